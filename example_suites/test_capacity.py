"""Capacity under an SLO: the most load this memcached takes while gets stay under 5 ms at p99.

What it guards: the knee of the latency-vs-throughput curve, as one number a
merge can be gated on (``capacity >= 1k``) and compared with a saved run
(``--slap-compare``). The search runs open-loop steps of 1 s, doubling the rate
from 1k/s until a step breaks the SLO or falls behind its rate, then bisects
to within 5 %. ``--slap-duration`` does not apply; ``--slap-capacity-step``
does.
"""

import pytest


@pytest.mark.slap(connections=16, keys=20_000, commands={"get": 0.9, "set": 0.1}, value_size=512)
@pytest.mark.slap_capacity(slo=["get.p99 < 5ms", "errors == 0"], start="1k", step="1s", time_limit="30s")
@pytest.mark.slap_thresholds("capacity >= 1k")  # (a busy shared 2-core CI machine; raise both for your servers)
def test_capacity_under_a_5ms_tail(slap):
    result = slap()
    knee = result.capacity
    assert result.capacity_steps, "the search ran no step"
    assert all(step["p99_us"] < 5000 for step in result.capacity_steps if step["passed"] and step["rate"] <= knee)

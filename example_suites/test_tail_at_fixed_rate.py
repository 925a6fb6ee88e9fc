"""The tail at a fixed request rate: an open-loop load over the meta protocol, with values verified.

What it guards: the p99.9 latency a service sees at its expected traffic
(requests leave on a Poisson schedule whatever the server does, so a stall
shows in the tail instead of slowing the load), that the server keeps up
with that rate, and that what comes back is what was written.
"""

import pytest


@pytest.mark.slap(
    duration="10s",
    rate="20k",  # requests per second over all connections: open loop
    arrivals="poisson",
    connections=16,
    commands={"get": 0.8, "set": 0.15, "delete": 0.05},
    keys=50_000,
    value_size=(100, 2000),
    protocol="meta",
    verify=0.05,  # one get in twenty compared byte for byte with what was written
)
@pytest.mark.slap_thresholds("ops_per_sec >= 18k", "get.p999 < 100ms", "errors == 0")
def test_tail_at_fixed_rate(slap):
    result = slap()
    assert result.rate()["achieved"] >= 0.9 * result.rate()["target"]

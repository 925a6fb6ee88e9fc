"""Real workloads: last week's traffic replayed from a trace, and published workloads as presets.

What it guards: that a build (or a config) holds under the traffic it will
see. The trace is a small sample shipped here (written by
``traces/make_traces.py``, in Twitter's cache-trace format, zstd-compressed);
point ``trace=`` at your own cluster's trace instead. The presets are
Facebook's ETC pool (Atikoglu et al., SIGMETRICS 2012) at a fixed rate, and
YCSB's workload B.
"""

import pytest


@pytest.mark.slap(
    trace="traces/sample.twitter.csv.zst",  # relative to this file
    speed=2,  # twice as fast as recorded
    duration=None,  # until the trace ends
    connections=8,
)
@pytest.mark.slap_thresholds("errors == 0", "get.p99 < 50ms")
def test_replay_of_a_cluster_trace(slap):
    result = slap()
    assert result.raw.replay["skipped"] == {}  # every line of the trace was replayed


@pytest.mark.slap(preset="facebook-etc", rate="20k", connections=16, keys=50_000)
@pytest.mark.slap_thresholds("ops_per_sec >= 18k", "get.p99 < 50ms", "errors == 0")
def test_facebook_etc_at_a_fixed_rate(slap):
    slap()


@pytest.mark.slap(preset="ycsb-b", connections=16, window=4, keys=50_000)
@pytest.mark.slap_thresholds("get.p99 < 50ms", "errors == 0", "hit_ratio >= 0.99")
def test_ycsb_b_read_mostly(slap):
    slap()

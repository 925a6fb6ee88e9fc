"""A write-heavy session store: sessions written on every request, read back, expired by delete.

What it guards: set throughput and latency when most traffic writes 0.5-4 KB
values, with deletes in the mix (log-outs), on closed-loop connections like a
web tier's connection pool.
"""

import pytest


@pytest.mark.slap(
    duration="10s",
    connections=64,
    window=1,
    commands={"set": 0.6, "get": 0.3, "delete": 0.1},
    keys=50_000,
    key_size=40,
    value_size=(512, 4096),
    preload=True,
)
@pytest.mark.slap_thresholds("ops_per_sec >= 10k", "set.p99 < 25ms", "get.p99 < 25ms", "errors == 0")
def test_session_store(slap):
    result = slap()
    # deletes make some later gets miss; the store must still answer most of them
    assert result.get.hit_ratio > 0.5

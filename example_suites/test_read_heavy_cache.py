"""A read-heavy cache in front of a database: 90 % gets on a preloaded keyspace.

What it guards: throughput and get tail latency of the common cache pattern,
and that a warm cache really hits (a hit ratio drop means evictions or a
changed key layout).
"""

import pytest


@pytest.mark.slap(
    duration="10s",
    warmup="1s",
    connections=32,
    window=4,
    commands={"get": 0.9, "set": 0.1},
    keys=100_000,
    key_size=(16, 64),
    value_size=(64, 1024),
    key_pattern="zipf:0.99",  # a few keys are hot, as in most caches
    preload=True,
)
@pytest.mark.slap_thresholds("ops_per_sec >= 20k", "get.p99 < 50ms", "errors == 0", "hit_ratio >= 0.99")
def test_read_heavy_cache(slap):
    result = slap()
    assert result.get.hit_ratio > 0.99
    assert result.set.errors == 0

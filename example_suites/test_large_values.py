"""Large values near memcached's item size limit (1 MiB by default).

What it guards: that objects of 256-960 KiB are stored and served without
"object too large" errors, and the network throughput of large transfers.
"""

import pytest


@pytest.mark.slap(
    duration="10s",
    connections=8,
    window=1,
    commands={"get": 0.7, "set": 0.3},
    keys=400,
    key_size=32,
    value_size=(256 * 1024, 960 * 1024),
    preload=True,
)
@pytest.mark.slap_thresholds("errors == 0", "mb_per_sec >= 100", "get.p99 < 100ms", "hit_ratio >= 0.99")
def test_large_values(slap, memcached_server):
    limit = memcached_server.stats("settings")["item_size_max"]
    result = slap()
    assert result.workload.max_value_size() < limit
    assert result.set.hits == result.set.ops  # every large set was STORED

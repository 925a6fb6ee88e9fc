"""Which share of a workload one process runs: shard ``index`` of ``count``.

Shards are shared-nothing: each owns a disjoint slice of the keyspace, its
share of the connections and ops, and RNG streams derived from (seed, shard
index), so a run is reproducible and shards never need to coordinate.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from pytest_memaslap.model.keyspace import key_slice
from pytest_memaslap.model.workload import Workload


@dataclass(frozen=True)
class ShardPlan:
    """Which share of a workload this process runs: shard ``index`` of ``count``."""

    index: int = 0
    count: int = 1
    sync_timeout: float = 60.0
    call_off_key: str | None = None  # set on the server when a shard is known dead: the others stop waiting

    def keys(self, workload: Workload) -> range:
        return key_slice(workload.keys, self.index, self.count)

    def connections(self, workload: Workload) -> int:
        return len(key_slice(workload.connections, self.index, self.count))

    def ops(self, workload: Workload) -> int | None:
        if workload.ops is None:
            return None
        return len(key_slice(workload.ops, self.index, self.count))

    def rng(self, workload: Workload, stream: str) -> random.Random:
        return random.Random(f"{workload.seed}:{self.index}:{stream}")

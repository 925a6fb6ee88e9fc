"""The load engine: asyncio + uvloop, pipelined memcached connections; knows nothing of pytest."""

from __future__ import annotations

from ..stats import ShardResult
from ..workload import Workload
from .errors import SlapRunError
from .loop import LOOP_NAME, LOOP_NOTE
from .loop import run as run_loop
from .shard import ShardPlan, ShardRunner, Target

__all__ = ["LOOP_NAME", "LOOP_NOTE", "ShardPlan", "SlapRunError", "Target", "run_shard"]


def run_shard(workload: Workload, target: Target, prefix: str, plan: ShardPlan | None = None) -> ShardResult:
    """Run one shard of ``workload`` against ``target`` with keys under ``prefix``; blocks until done."""
    shard = plan or ShardPlan()
    return run_loop(lambda: ShardRunner(workload, target, prefix, shard).run())

"""The load engine: asyncio + uvloop, pipelined memcached connections; knows nothing of pytest."""

from __future__ import annotations

from collections.abc import Sequence

from pytest_memaslap.engine.errors import SlapInterrupted, SlapRunError
from pytest_memaslap.engine.loop import LOOP_NAME, LOOP_NOTE
from pytest_memaslap.engine.loop import run as run_loop
from pytest_memaslap.engine.shapes import shape_for
from pytest_memaslap.engine.shard import ShardRunner
from pytest_memaslap.memcached.endpoint import Target
from pytest_memaslap.model.capacity import CapacitySearch
from pytest_memaslap.model.shard_plan import ShardPlan
from pytest_memaslap.model.workload import Workload
from pytest_memaslap.stats.live import OnPreload, OnSecond
from pytest_memaslap.stats.results import ShardResult

__all__ = ["LOOP_NAME", "LOOP_NOTE", "ShardPlan", "SlapInterrupted", "SlapRunError", "Target", "run_shard"]


def run_shard(
    workload: Workload,
    target: Target | Sequence[Target],
    prefix: str,
    plan: ShardPlan | None = None,
    cleanup: bool = False,
    on_second: OnSecond | None = None,
    capacity: CapacitySearch | None = None,
    on_preload: OnPreload | None = None,
) -> ShardResult:
    """Run one shard of ``workload`` against ``target`` with keys under ``prefix``; blocks until done.

    Several targets: keys are spread over them as pymemcache's HashClient spreads them.

    ``cleanup`` deletes the shard's keys after the measured phase;
    ``on_second`` sees each second of the measured phase as it closes, and
    can read the phase's running totals (live progress, live exporters);
    ``on_preload`` sees how far the preload is, once a second.
    ``capacity`` runs a capacity search instead of one load (one shard).
    On Ctrl-C the load stops and :class:`SlapInterrupted` carries what
    was measured.
    """
    if capacity is not None and workload.probe_rate is not None:
        raise SlapRunError("probe_rate: a capacity search's steps have no one measured phase to probe; drop it")
    if capacity is not None and plan is not None and plan.count > 1:
        raise SlapRunError("slap_capacity: a capacity search runs on one shard; run it without --slap-shards")
    shape = shape_for(workload, capacity)
    runner = ShardRunner(workload, target, prefix, plan or ShardPlan(), cleanup, on_second, on_preload, shape)
    try:
        return run_loop(runner.run)
    except KeyboardInterrupt:
        raise SlapInterrupted(runner.partial) from None

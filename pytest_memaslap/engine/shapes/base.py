"""What a load shape is, and what it may use of the shard runner that composes it.

The runner owns a shard's lifecycle: it connects, preloads, watches every
wait, reconnects, closes seconds, cleans up. A shape owns only what happens
between the preload and the cleanup: which requests go out, when, and in
which phases they count. It talks to the runner through ``Run`` and nothing
else, so a new shape is one module here (and its model and output), never a
subclass of the runner.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from time import perf_counter_ns
from typing import Any, Protocol

from pytest_memaslap.engine.hot.connection import Connection, RequestSource
from pytest_memaslap.engine.hot.recorder import PhaseRecorder
from pytest_memaslap.engine.pacer import Ticker
from pytest_memaslap.engine.selfcheck import LoadMonitor
from pytest_memaslap.model.keyspace import key_slice
from pytest_memaslap.model.shard_plan import ShardPlan
from pytest_memaslap.model.workload import Workload
from pytest_memaslap.protocol.codecs import Codec
from pytest_memaslap.stats.histogram import Histogram
from pytest_memaslap.stats.results import PhaseStats, ShardResult


class Driver(Protocol):
    """A load driver as a shape starts it: a TCP connection or a UDP socket (see ``hot.connection.Driven``)."""

    def begin(self, source: RequestSource, budget: int, depth: int, paced: bool = False) -> asyncio.Future[None]: ...

    def set_budget(self, budget: int) -> None: ...

    def stop(self) -> None: ...


class Run(Protocol):
    """What a shape may use of the shard runner: its plan, its drivers, its phases and its watched waits."""

    workload: Workload
    plan: ShardPlan
    result: ShardResult
    connections: list[Connection]
    prefix: str  # the run's keys start with it
    codec: Codec  # the workload's protocol
    sources: list[Any]  # the measured phase's sources, kept for cleanup (their ``fresh_keys``)

    def build_sources(self) -> list[Any]:
        """The measured phase's request sources of the workload's mix, one per connection."""

    async def open_drivers(self) -> Sequence[Driver]:
        """The drivers the load goes out on: the connections, or one UDP socket each (``transport="udp"``)."""

    def start_phase(self, name: str, names: tuple[str, ...]) -> PhaseRecorder:
        """New requests count in phase ``name`` (commands ``names``) from now."""

    def end_phase(self, name: str, end_ns: int) -> None:
        """Phase ``name`` ended at ``end_ns`` (its stats are built with the run's)."""

    def take_phase(self) -> PhaseStats:
        """End the current phase now and return its stats apart from the run's phases."""

    def stop(self, drivers: Sequence[Driver]) -> None:
        """Time is up: every driver stops sending, and goes idle once drained."""

    async def wait(self, awaitable: Awaitable[Any], until_ns: int | None = None) -> None:
        """Wait for ``awaitable`` (until ``until_ns`` at most), ended early by a failed connection or a stall."""


class Shape(Protocol):
    """A load shape: the part of a shard's run between the preload and the cleanup."""

    async def load(self, run: Run) -> None:
        """Send the load and record it in phases (at least ``measured``); return once nothing is in flight."""

    def keep(self, result: ShardResult) -> None:
        """Add what the shape measured apart to the shard's finished result (called once, at the end)."""


class Hooks:
    """What a fixed load's shape adds to the shared warm-up, measured phase and drain (``fixed_load``)."""

    def measured(self) -> None:
        """The measured phase began (the warm-up, if any, is over)."""

    def halt(self) -> None:
        """The measured phase's time is up: stop whatever schedules sends."""

    def joined(self) -> list[asyncio.Future[None]]:
        """Drivers begun after the start (connection steps): their idle futures, to drain too."""
        return []


DEPARTURES_KEPT = 5_000  # send times an open loop keeps for its arrivals check (Lancet samples as many)


class Pacing(Protocol):
    """What a paced shape's sender keeps: its clock (and spin), how late it sent, and its stop."""

    ticker: Ticker
    max_lag_ns: int
    send_lag: Histogram
    departures: list[int]  # a sample of send times (ns)
    departures_wanted: int

    def stop(self) -> None: ...


class PacedShape(Hooks):
    """What the open-loop shapes share: the pacer stopped when time is up, its send lag kept, its spin priced."""

    def __init__(self) -> None:
        self.pacer: Pacing | None = None
        self._idle_ticks_before = 0  # the pacer's idle ticks when the measured phase began

    async def paced_load(
        self,
        run: Run,
        drivers: Sequence[Driver],
        begin: Callable[[list[int]], list[asyncio.Future[None]]],
        budgeted: bool = True,
    ) -> None:
        """``fixed_load`` with ``self.pacer`` sending; its send lag and (priced) spin go into the result."""
        pacer = self.pacer
        assert pacer is not None, "a paced load without its pacer"
        try:
            with measuring(run.result) as monitor:
                await fixed_load(run, drivers, begin, monitor, self, budgeted)
            # (the spin in the measured phase: its idle ticks, priced, so a request's cost means what it does
            # in a closed loop)
            run.result.pacer_spin_s = pacer.ticker.cpu_s(pacer.ticker.idle_ticks - self._idle_ticks_before)
        finally:
            pacer.stop()
            run.result.send_lag_max_s = pacer.max_lag_ns / 1e9
            run.result.send_lag = pacer.send_lag
            run.result.departures = pacer.departures

    def measured(self) -> None:
        assert self.pacer is not None
        self._idle_ticks_before = self.pacer.ticker.idle_ticks
        self.pacer.departures_wanted = DEPARTURES_KEPT  # (the measured phase's first sends: the arrival check's)

    def halt(self) -> None:
        if self.pacer is not None:
            self.pacer.stop()


@contextmanager
def measuring(result: ShardResult) -> Iterator[LoadMonitor]:
    """Around the measured load: the keyspace frozen out of the collector, and this process's own load watched.

    The monitor is started by the shape when measuring begins (after a
    warm-up); whatever it saw goes into ``result`` however the load ends.
    """
    gc.freeze()  # the keyspace and setup objects never need collecting again
    monitor = LoadMonitor()  # is this process the bottleneck? (CPU share, loop lag)
    try:
        yield monitor
    finally:
        monitor.stop()
        result.cpu_pct, result.loop_lag = monitor.cpu_pct, monitor.lag
        result.hiccups = monitor.hiccups
        result.cpu_user_s, result.cpu_system_s = monitor.user_s, monitor.system_s
        gc.unfreeze()
        # The frozen objects return to the oldest generation uncounted, so their garbage (the call's cycles)
        # would wait for a full collection that comes ever later: collect it now, after the measured phase.
        gc.collect()


async def fixed_load(
    run: Run,
    drivers: Sequence[Driver],
    begin: Callable[[list[int]], list[asyncio.Future[None]]],
    monitor: LoadMonitor,
    hooks: Hooks,
    budgeted: bool = True,
) -> None:
    """An optional warm-up, the measured phase (``duration``, or until the op budget is spent), the drain.

    ``begin`` starts the drivers with their budgets (-1: none, during a
    warm-up) and returns their idle futures. Not ``budgeted``: the shape
    keeps to ``ops`` itself (a replay, whose keys decide the connection).
    """
    workload = run.workload
    names = workload.measured_commands()
    budgets = split(run.plan.ops(workload) if budgeted else None, len(drivers))
    first = "warmup" if workload.warmup > 0 else "measured"
    recorder = run.start_phase(first, names)
    run.result.started_at = time.time()
    idle = begin([-1] * len(budgets) if first == "warmup" else budgets)
    if first == "warmup":
        await run.wait(asyncio.Event().wait(), until_ns=recorder.start_ns + int(workload.warmup * 1e9))
        run.end_phase("warmup", perf_counter_ns())
        recorder = run.start_phase("measured", names)
        run.result.started_at = time.time()
        for driver, budget in zip(drivers, budgets, strict=True):
            driver.set_budget(budget)
    monitor.start()
    hooks.measured()
    if workload.duration is not None:
        end_ns = recorder.start_ns + int(workload.duration * 1e9)
        await run.wait(asyncio.shield(asyncio.gather(*idle)), until_ns=end_ns)
        run.stop(drivers)
        hooks.halt()
    await run.wait(asyncio.gather(*idle, *hooks.joined()))
    run.end_phase("measured", perf_counter_ns())


def split(total: int | None, parts: int) -> list[int]:
    """Divide an op budget over drivers; -1 everywhere means no budget."""
    if total is None:
        return [-1] * parts
    return [len(key_slice(total, i, parts)) for i in range(parts)]

"""Connection steps (``connections="4:+4"``): more connections join the closed loop at each step's start."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from time import perf_counter_ns
from typing import Any

from pytest_memaslap.engine.shapes.base import Driver, Hooks, Run, fixed_load, measuring
from pytest_memaslap.model.keyspace import key_slice
from pytest_memaslap.stats.results import ShardResult


class ConnectionSteps(Hooks):
    """A closed loop whose connections begin step by step; each step's seconds show in the timeline."""

    def __init__(self) -> None:
        self._task: asyncio.Future[None] | None = None
        self._joined: list[asyncio.Future[None]] = []

    async def load(self, run: Run) -> None:
        workload = run.workload
        sources = run.build_sources()
        drivers = await run.open_drivers()
        start_ns = 0

        def begin(budgets: list[int]) -> list[asyncio.Future[None]]:
            nonlocal start_ns
            start_ns = perf_counter_ns()
            active = self._active(run, 0)
            self._task = asyncio.ensure_future(self._step_up(run, drivers, sources, start_ns))
            first = list(zip(drivers, sources, strict=True))[:active]
            return [driver.begin(source, -1, workload.window) for driver, source in first]

        try:
            with measuring(run.result) as monitor:
                await fixed_load(run, drivers, begin, monitor, self)
        finally:
            self.halt()

    @staticmethod
    def _active(run: Run, step: int) -> int:
        """This shard's connections that run in step ``step`` (its share of the run's)."""
        return len(key_slice(run.workload.active_connections(step), run.plan.index, run.plan.count))

    async def _step_up(self, run: Run, drivers: Sequence[Driver], sources: list[Any], start_ns: int) -> None:
        """At each step's start, begin this shard's connections that join in it."""
        workload = run.workload
        running = self._active(run, 0)
        for step in range(1, workload.step_count()):
            due_ns = start_ns + int(step * workload.step_duration * 1e9)
            await asyncio.sleep(max(0.0, (due_ns - perf_counter_ns()) / 1e9))
            joining = self._active(run, step)
            for driver, source in list(zip(drivers, sources, strict=True))[running:joining]:
                self._joined.append(driver.begin(source, -1, workload.window, False))
            running = joining

    def halt(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def joined(self) -> list[asyncio.Future[None]]:
        return self._joined

    def keep(self, result: ShardResult) -> None:
        pass  # (the steps' seconds are in the measured phase's timeline)

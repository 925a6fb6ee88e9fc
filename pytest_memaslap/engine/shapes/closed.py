"""Closed loop (memaslap's shape): each connection keeps ``window`` requests in flight, a reply frees a slot."""

from __future__ import annotations

import asyncio

from pytest_memaslap.engine.shapes.base import Hooks, Run, fixed_load, measuring
from pytest_memaslap.stats.results import ShardResult


class ClosedLoop:
    """Every connection sends as fast as its replies come back, for ``duration`` or ``ops``."""

    async def load(self, run: Run) -> None:
        workload = run.workload
        sources = run.build_sources()
        drivers = await run.open_drivers()

        def begin(budgets: list[int]) -> list[asyncio.Future[None]]:
            return [
                driver.begin(source, budget, workload.window)
                for driver, source, budget in zip(drivers, sources, budgets, strict=True)
            ]

        with measuring(run.result) as monitor:
            await fixed_load(run, drivers, begin, monitor, Hooks())

    def keep(self, result: ShardResult) -> None:
        pass  # (everything it measured is in the phases)

"""Open loop (``rate=``, ``stages=``): requests leave on the pacer's schedule, whatever the server does."""

from __future__ import annotations

import asyncio

from pytest_memaslap.engine.pacer import Pacer
from pytest_memaslap.engine.shapes.base import PacedShape, Run
from pytest_memaslap.stats.results import ShardResult


class OpenLoop(PacedShape):
    """Paced connections at the workload's rate profile (this shard's share of it); latency from the schedule."""

    async def load(self, run: Run) -> None:
        workload, plan = run.workload, run.plan
        sources = run.build_sources()
        drivers = await run.open_drivers()
        profile = workload.rate_profile()
        assert profile is not None, "an open loop without a rate"
        connections = run.connections
        self.pacer = pacer = Pacer(
            connections,
            profile,
            len(connections) / workload.connections,  # this shard's share of the rate
            workload.arrivals,
            [plan.rng(workload, f"arrivals{i}") for i in range(len(connections))],
        )

        def begin(budgets: list[int]) -> list[asyncio.Future[None]]:
            idle = [
                driver.begin(source, budget, workload.window, True)
                for driver, source, budget in zip(drivers, sources, budgets, strict=True)
            ]
            pacer.start()
            return idle

        await self.paced_load(run, drivers, begin)

    def keep(self, result: ShardResult) -> None:
        pass  # (its send lag and spin are set as the load ends)

"""Open loop (``rate=``, ``stages=``): requests leave on the pacer's schedule, whatever the server does."""

from __future__ import annotations

import asyncio

from pytest_memaslap.engine.pacer import Pacer
from pytest_memaslap.engine.shapes.base import Hooks, Run, fixed_load, measuring
from pytest_memaslap.stats.results import ShardResult


class OpenLoop(Hooks):
    """Paced connections at the workload's rate profile (this shard's share of it); latency from the schedule."""

    def __init__(self) -> None:
        self.pacer: Pacer | None = None
        self._idle_ticks_before = 0  # the pacer's idle ticks when the measured phase began

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

        try:
            with measuring(run.result) as monitor:
                await fixed_load(run, drivers, begin, monitor, self)
            # (the spin in the measured phase: its idle ticks, priced, so a request's cost means what it does
            # in a closed loop)
            run.result.pacer_spin_s = pacer.spin.cpu_s(pacer.spin.idle_ticks - self._idle_ticks_before)
        finally:
            pacer.stop()
            run.result.send_lag_max_s = pacer.max_lag_ns / 1e9
            run.result.send_lag = pacer.send_lag

    def measured(self) -> None:
        assert self.pacer is not None
        self._idle_ticks_before = self.pacer.spin.idle_ticks

    def halt(self) -> None:
        if self.pacer is not None:
            self.pacer.stop()

    def keep(self, result: ShardResult) -> None:
        pass  # (its send lag and spin are set as the load ends)

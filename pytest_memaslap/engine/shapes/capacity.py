"""A capacity search on one shard: open-loop steps at the rates ``model.capacity.CapacityPlanner`` picks.

The keyspace is preloaded once (by the runner's ``run``); then each step
sends at its rate for ``step`` seconds, stops, drains what is in flight and
is judged on its own: its SLO on its own latencies, and whether it reached
its rate. The result's measured phase is the capacity step (the highest rate
that passed), so every other statistic describes the load the server can
take; the other steps are kept in a ``search`` phase (their requests count as
sent) and, step by step, in ``ShardResult.capacity``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from time import perf_counter_ns
from typing import Any

from pytest_memaslap.engine.pacer import Pacer
from pytest_memaslap.engine.shapes.base import Run, measuring
from pytest_memaslap.model.capacity import CapacityPlanner, CapacitySearch, narrow_miss, step_passed
from pytest_memaslap.model.rate_profile import RateProfile
from pytest_memaslap.stats.histogram import Histogram
from pytest_memaslap.stats.result import SlapResult
from pytest_memaslap.stats.results import PhaseStats, ShardResult


class CapacityShape:
    """Open-loop steps at the rates the planner picks, each judged on its own, until the knee is bracketed."""

    def __init__(self, search: CapacitySearch) -> None:
        self.search = search
        self.steps: list[tuple[float, PhaseStats, dict[str, Any]]] = []  # (rate, stats, the JSON's step)
        self._kept: dict[str, PhaseStats] = {}  # the capacity step (measured) and the other steps (search)
        self._capacity: dict[str, Any] | None = None

    async def load(self, run: Run) -> None:
        search = self.search
        sources = run.build_sources()
        planner = CapacityPlanner(search)
        began = perf_counter_ns()
        run.result.started_at = time.time()
        with measuring(run.result) as monitor:
            monitor.start()
            try:
                while (rate := planner.next_rate((perf_counter_ns() - began) / 1e9)) is not None:
                    stats, sent, lag = await self._step(run, rate, sources, len(self.steps))
                    step = self._judge(run, rate, stats, sent, lag)
                    self.steps.append((rate, stats, step))
                    if step["marginal"] and planner.may_retry((perf_counter_ns() - began) / 1e9):
                        # one stall of this machine must not end the climb: a narrow miss is tried once more
                        stats, sent, lag = await self._step(run, rate, sources, len(self.steps))
                        step = {**self._judge(run, rate, stats, sent, lag), "retry": True}
                        self.steps.append((rate, stats, step))
                    planner.record(rate, step["passed"])
            finally:
                self._keep_steps(planner)

    async def _step(self, run: Run, rate: float, sources: list[Any], number: int) -> tuple[PhaseStats, int, Histogram]:
        """One step: ``rate`` requests/s for ``step`` seconds, then a drain; its stats, requests sent, send lag."""
        workload, plan, connections = run.workload, run.plan, run.connections
        recorder = run.start_phase("measured", workload.measured_commands())
        idle = [c.begin(s, -1, workload.window, True) for c, s in zip(connections, sources, strict=True)]
        share = len(connections) / workload.connections  # (one shard: all of them)
        rngs = [plan.rng(workload, f"arrivals{i}.step{number}") for i in range(len(connections))]
        pacer = Pacer(connections, RateProfile.constant(rate), share, workload.arrivals, rngs)
        pacer.start()
        all_idle = asyncio.gather(*idle)
        try:
            await run.wait(asyncio.shield(all_idle), until_ns=recorder.start_ns + int(self.search.step_s * 1e9))
            run.stop(connections)
            pacer.stop()
            await run.wait(all_idle)
        finally:
            pacer.stop()
            run.result.send_lag_max_s = max(run.result.send_lag_max_s, pacer.max_lag_ns / 1e9)
            run.result.send_lag.merge(pacer.send_lag)
        stats = run.take_phase()  # (its time includes the drain: a server behind its rate shows as slower)
        return stats, pacer.sent, pacer.send_lag

    def _judge(self, run: Run, rate: float, stats: PhaseStats, sent: int, send_lag: Histogram) -> dict[str, Any]:
        """A step's line: its rate, what it achieved, its latencies, and whether it kept the SLO at that rate.

        Whether the server took the rate: see ``model.capacity.step_passed``.
        A sender that fell behind its schedule shows in the SLO, as latencies
        count from each request's scheduled time.
        """
        raw = ShardResult()
        raw.phases["measured"] = stats
        result = SlapResult(replace(run.workload, rate=rate, duration=self.search.step_s), raw)
        verdicts = [rule.evaluate(result) for rule in self.search.slo]
        kept = all(v.passed for v in verdicts)
        latency = result.total.latency_us
        passed = step_passed(sent, self.search.step_s, result.ops, stats.elapsed_s, kept)
        return {
            "rate": round(rate, 1),
            "achieved": round(result.ops_per_sec, 1),
            "passed": passed,
            "marginal": not passed and narrow_miss(verdicts, sent, self.search.step_s, result.ops, stats.elapsed_s),
            "slo_passed": kept,
            "p50_us": latency["p50"],
            "p99_us": latency["p99"],
            "p999_us": latency["p999"],
            "errors": result.errors,
            "send_lag_p99_us": round(send_lag.percentile(99.0) / 1000.0, 1),  # (is the knee ours?)
        }

    def _keep_steps(self, planner: CapacityPlanner) -> None:
        """The capacity step becomes the measured phase; the others go into ``search``; every step into JSON."""
        capacity = planner.capacity
        best = next((stats for rate, stats, step in self.steps if rate == capacity and step["passed"]), None)
        if best is None and self.steps:
            best = self.steps[-1][1]  # (nothing passed: the last, lowest step is what the server did)
        rest = PhaseStats()
        for _, stats, _ in self.steps:
            if stats is not best:
                rest.merge(stats)
        if best is not None:
            self._kept["measured"] = best
        self._kept["search"] = rest
        self._capacity = {
            "slo": [rule.expr for rule in self.search.slo],
            "ops_per_sec": round(capacity, 1),
            "lower_bound": planner.lower_bound,  # (no step failed: the capacity is at least this)
            "stopped_by": planner.stopped_by,
            "steps": [step for _, _, step in self.steps],
        }

    def keep(self, result: ShardResult) -> None:
        """The measured phase is the capacity step (a step cut short by an interrupt gives way to it)."""
        result.phases.update(self._kept)
        if self._capacity is not None:
            result.capacity = self._capacity

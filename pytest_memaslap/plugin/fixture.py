"""The ``slap`` object a test receives: call it to run the test's workload."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pytest_memaslap.memcached.endpoint import Target
from pytest_memaslap.memcached.sasl import workload_problem
from pytest_memaslap.memcached.server import MemcachedServer
from pytest_memaslap.model.allowances import Allowance
from pytest_memaslap.model.capacity import CapacitySearch
from pytest_memaslap.model.keyspace import check_key_size
from pytest_memaslap.model.shard_plan import ShardPlan
from pytest_memaslap.model.thresholds import Threshold, ThresholdError, parse_all
from pytest_memaslap.model.workload import Workload, WorkloadError
from pytest_memaslap.stats.live import OnPreload, OnSecond
from pytest_memaslap.stats.result import SlapResult
from pytest_memaslap.stats.rounds import with_rounds


@dataclass
class SlapRun:
    """One ``slap()`` call of a test: its rounds, and how it ended. Judged by the mode that reports it."""

    rounds: list[SlapResult]
    interrupted: bool = False
    error: str | None = None  # the call failed; ``rounds`` hold what it did until then
    versus_rounds: list[SlapResult] = field(default_factory=list)  # --slap-versus*: B's rounds, paired by number
    order: list[str] = field(default_factory=list)  # --slap-versus*: "AB" or "BA", each pair's order

    @property
    def result(self) -> SlapResult:
        """What ``slap()`` returns: the median round, carrying every round (and B's, under A/B)."""
        result = with_rounds(self.rounds)
        result.versus = with_rounds(self.versus_rounds) if self.versus_rounds else None
        return result


class Slap:
    """Runs the test's workload (from its ``slap`` mark and the options) against its memcached.

    ``slap()`` runs it as declared; ``slap(duration="2s", window=8)`` changes
    fields for this call. Both return a :class:`SlapResult`. With a second
    server (``versus``, the B of an interleaved A/B), each round runs on both,
    in an order drawn at random for each pair.
    """

    def __init__(
        self,
        workload: Workload,
        thresholds: tuple[Threshold, ...],
        server: MemcachedServer,
        prefix_for_call: Callable[[int], str],
        shard: ShardPlan | None = None,
        cleanup: bool = False,
        on_second_for: Callable[[Workload, str], tuple[OnSecond | None, OnPreload | None]] | None = None,
        rounds: int = 1,
        capacity: CapacitySearch | None = None,
        versus: MemcachedServer | None = None,
        max_rounds: int | None = None,
        allowances: tuple[Allowance, ...] = (),
        sample_server: bool = False,
        shared_server: str | None = None,
    ) -> None:
        self.workload = workload
        self.thresholds = thresholds
        self.server = server
        self.shard = shard or ShardPlan()
        self._cleanup = cleanup  # (a server we started is stopped anyway: only others' are cleaned)
        self._prefix_for_call = prefix_for_call
        self._on_second_for = on_second_for  # (live progress and metrics of each call, and its preload's progress)
        self.rounds = rounds
        self.max_rounds = max(max_rounds or rounds, rounds)  # --slap-max-rounds: more while a verdict is undecided
        self.capacity = capacity  # a slap_capacity search instead of one load
        self.versus = versus
        self.allowances = allowances
        self.sample_server = sample_server  # sample the servers' stats during each round (one shard does)
        self.shared_server = shared_server  # why other requests may reach the server in the same seconds
        self.runs: list[SlapRun] = []

    def __call__(self, **overrides: Any) -> SlapResult:
        __tracebackhide__ = True
        prefix = self._prefix_for_call(len(self.runs) + 1)
        try:
            workload = self._checked(overrides, prefix)
        except (WorkloadError, ThresholdError) as exc:  # one message, at the test's own line
            raise type(exc)(str(exc)) from None
        from pytest_memaslap.engine import SlapInterrupted, SlapRunError  # (the engine loads on first use)

        run = SlapRun([])
        sides = {"A": (self.server, run.rounds), "B": (self.versus, run.versus_rounds)}
        number = 0
        while number < self.rounds or (number < self.max_rounds and self._undecided(run)):
            number += 1
            order = "A"
            if self.versus is not None:
                order = self._order(prefix, number)
                run.order.append(order)
            for side in order:
                server, done = sides[side]
                assert server is not None
                try:
                    done.append(
                        self._round(workload, server, round_prefix(prefix, number, self.max_rounds), number, side)
                    )
                except SlapRunError as exc:
                    if exc.partial is not None:  # the summary shows what was done before the failure
                        done.append(SlapResult(workload, exc.partial, server.version))
                    run.error = str(exc)
                    self._record(run)
                    raise SlapRunError(str(exc), exc.partial) from None
                except SlapInterrupted as exc:
                    if exc.partial is not None:  # keep what was measured for the summary, then stop
                        done.append(SlapResult(workload, exc.partial, server.version))
                    run.interrupted = True
                    self._record(run)
                    raise KeyboardInterrupt from None
        self._record(run)
        return self.runs[-1].result

    def _round(self, workload: Workload, server: MemcachedServer, prefix: str, number: int, side: str) -> SlapResult:
        """One round on one server; raises the engine's SlapRunError or SlapInterrupted."""
        from pytest_memaslap.engine import run_shard

        planned = str(self.rounds) if self.max_rounds == self.rounds else f"{self.rounds}-{self.max_rounds}"
        label = f" round {number}/{planned}" if self.max_rounds > 1 else ""
        label += f" {side}" if self.versus is not None else ""
        target = [Target(host, port, server.tls, server.sasl) for host, port in server.servers]
        on_second, on_preload = self._on_second_for(workload, label) if self._on_second_for else (None, None)
        cleanup = self._cleanup and not server.owned
        sampler = None
        if self.sample_server:
            from pytest_memaslap.memcached.sampler import StatsSampler

            sampler = StatsSampler(list(server.servers), server.tls, server.sasl, proxy=server.proxy_stats)
            sampler.start()
        try:
            raw = run_shard(workload, target, prefix, self.shard, cleanup, on_second, self.capacity, on_preload)
        finally:
            if sampler is not None:
                sampler.stop()
        if sampler is not None:
            raw.server = sampler.section((raw.started_at, raw.started_at + raw.measured.elapsed_s))
            raw.server["owned"] = server.owned
            raw.server["why_not_exact"] = self._why_not_exact(workload)
        return SlapResult(workload, raw, server.version)

    def _why_not_exact(self, workload: Workload) -> str | None:
        """Why the servers' request counters cannot equal this call's requests (None: they must)."""
        if workload.division > 1:
            return "a multi-get counts each of its keys in cmd_get"
        if self.shard.count > 1:
            return "the other shards' requests are not all within this shard's first and last samples"
        return self.shared_server

    @staticmethod
    def _order(prefix: str, number: int) -> str:
        """Which side runs first in pair ``number``: random, and the same on every shard (drawn from the prefix)."""
        return "AB" if random.Random(f"{prefix}|{number}").random() < 0.5 else "BA"

    def _undecided(self, run: SlapRun) -> bool:
        """Whether a threshold or a gated A/B metric is still inconclusive on the rounds so far (more may decide)."""
        from pytest_memaslap.stats.outcome import versus_rows
        from pytest_memaslap.stats.verdicts import LOAD_GENERATOR_LIMITED, judge_thresholds

        if not run.rounds:
            return False
        verdicts = judge_thresholds(self.thresholds, with_rounds(list(run.rounds)))
        if any(v.inconclusive and v.why != LOAD_GENERATOR_LIMITED for v in verdicts):
            return True
        if run.versus_rounds:
            return any(row.inconclusive for row in versus_rows("", run.rounds, run.versus_rounds, self.allowances))
        return False

    def _checked(self, overrides: dict[str, Any], prefix: str) -> Workload:
        """This call's workload, with every check that needs the server or the call: before any load runs."""
        workload = Workload.from_args(overrides, base=self.workload) if overrides else self.workload
        parse_all(tuple(t.expr for t in self.thresholds), workload.measured_commands())
        check_key_size(workload.key_size, workload.keys, round_prefix(prefix, self.max_rounds, self.max_rounds))
        for server in filter(None, (self.server, self.versus)):
            check_item_size(workload, server)
            if workload.transport == "udp" and server.udp is False:
                raise WorkloadError(
                    f"transport='udp': this memcached does not listen on UDP ({server.address}; the plugin starts "
                    "it with -U 0); use @pytest.mark.memcached(udp=True) or --memcached-udp"
                )
        if self.server.sasl is not None and (problem := workload_problem(workload.protocol, workload.transport)):
            raise WorkloadError(problem)
        check_shards(workload, self.shard, len(self.server.servers))
        if self.capacity is not None and self.shard.count > 1:
            raise WorkloadError("slap_capacity: a capacity search runs on one shard; run it without --slap-shards")
        if self.capacity is not None and workload.open_loop:
            raise WorkloadError(
                "slap_capacity: the search sets the rate of each step; call slap() without rate= or stages="
            )
        if self.capacity is not None and self.versus is not None:
            raise WorkloadError(
                "slap_capacity: a capacity search is not run A/B; compare capacities with --slap-save and "
                "--slap-compare instead of --slap-versus"
            )
        if self.max_rounds > self.rounds and self.shard.count > 1:
            raise WorkloadError(
                "--slap-max-rounds: shards cannot add rounds on their own (each would need the merged result "
                "to decide); give a fixed --slap-rounds=N to sharded runs"
            )
        return workload

    def _record(self, run: SlapRun) -> None:
        """Keep the call's rounds as one run; its result is the median round, carrying all of them.

        (A call that ended before A's first round keeps nothing: B's rounds alone cannot be judged against A.)
        """
        if run.rounds:
            self.runs.append(run)


def round_prefix(prefix: str, number: int, rounds: int) -> str:
    """Each round writes keys of its own, so a round never finds the previous round's data.

    (The two sides of an A/B pair share one: the same keys, on different servers.)
    """
    return prefix if rounds == 1 else f"{prefix[:-1]}.{number}:"


def check_shards(workload: Workload, shard: ShardPlan, servers: int = 1) -> None:
    """Every shard needs at least one connection (one per server) and one key of its own."""
    if servers > 1 and workload.connections < servers * shard.count:
        raise WorkloadError(
            f"connections={workload.connections}: fewer than {servers} servers x {shard.count} shard(s); "
            f"use at least {servers * shard.count} connections (each shard needs one per server)"
        )
    if shard.count > 1 and workload.connections < shard.count:
        raise WorkloadError(
            f"connections={workload.connections}: fewer than the {shard.count} shards; "
            f"use at least {shard.count} connections (each shard needs one)"
        )
    if shard.count > 1 and workload.keys < shard.count:
        raise WorkloadError(
            f"keys={workload.keys}: a keyspace too small for {shard.count} shards; use at least {shard.count} keys"
        )


def check_item_size(workload: Workload, server: MemcachedServer) -> None:
    """Refuse values the server would reject as too large, and a preload it cannot hold, before any load runs
    (when it says its limits)."""
    problem = workload.oversized_items(server.item_size_max())
    if problem:
        raise WorkloadError(f"value_size: {problem}; lower value_size, or start memcached with a larger -I")
    problem = workload.too_large_to_preload(server.memory_limit())
    if problem:
        raise WorkloadError(
            f"keys={workload.keys}, preload=True: {problem}; use fewer keys or smaller values, or give memcached "
            "more memory (-m, --memcached-memory)"
        )

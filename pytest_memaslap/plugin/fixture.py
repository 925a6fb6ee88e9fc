"""The ``slap`` object a test receives: call it to run the test's workload."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pytest_memaslap.memcached.endpoint import Target
from pytest_memaslap.memcached.sasl import workload_problem
from pytest_memaslap.memcached.server import MemcachedServer
from pytest_memaslap.model.capacity import CapacitySearch
from pytest_memaslap.model.keyspace import min_key_size
from pytest_memaslap.model.shard_plan import ShardPlan
from pytest_memaslap.model.thresholds import Threshold, ThresholdError, parse_all
from pytest_memaslap.model.workload import Workload, WorkloadError
from pytest_memaslap.stats.live import OnSecond
from pytest_memaslap.stats.result import SlapResult
from pytest_memaslap.stats.rounds import with_rounds


@dataclass
class SlapRun:
    """One ``slap()`` call of a test: its rounds, and how it ended. Judged by the mode that reports it."""

    rounds: list[SlapResult]
    interrupted: bool = False
    error: str | None = None  # the run failed; ``rounds`` hold what it did until then

    @property
    def result(self) -> SlapResult:
        """What ``slap()`` returns: the median round, carrying every round."""
        return with_rounds(self.rounds)


class Slap:
    """Runs the test's workload (from its ``slap`` mark and the options) against its memcached.

    ``slap()`` runs it as declared; ``slap(duration="2s", window=8)`` changes
    fields for this call. Both return a :class:`SlapResult`.
    """

    def __init__(
        self,
        workload: Workload,
        thresholds: tuple[Threshold, ...],
        server: MemcachedServer,
        prefix_for_call: Callable[[int], str],
        shard: ShardPlan | None = None,
        cleanup: bool = False,
        on_second_for: Callable[[Workload, str], OnSecond | None] | None = None,
        rounds: int = 1,
        capacity: CapacitySearch | None = None,
    ) -> None:
        self.workload = workload
        self.thresholds = thresholds
        self.server = server
        self.shard = shard or ShardPlan()
        self.cleanup = cleanup and not server.owned  # a server we started is stopped anyway
        self._prefix_for_call = prefix_for_call
        self._on_second_for = on_second_for  # (live progress and metrics of each call)
        self.rounds = rounds
        self.capacity = capacity  # a slap_capacity search instead of one load
        self.runs: list[SlapRun] = []

    def __call__(self, **overrides: Any) -> SlapResult:
        __tracebackhide__ = True
        prefix = self._prefix_for_call(len(self.runs) + 1)
        try:
            workload = self._checked(overrides, prefix)
        except (WorkloadError, ThresholdError) as exc:  # one message, at the test's own line
            raise type(exc)(str(exc)) from None
        from pytest_memaslap.engine import SlapInterrupted, SlapRunError, run_shard  # (the engine loads on first use)

        target = [Target(host, port, self.server.tls, self.server.sasl) for host, port in self.server.servers]
        done: list[SlapResult] = []
        for number in range(1, self.rounds + 1):
            label = f" round {number}/{self.rounds}" if self.rounds > 1 else ""
            try:
                on_second = self._on_second_for(workload, label) if self._on_second_for else None
                raw = run_shard(
                    workload,
                    target,
                    round_prefix(prefix, number, self.rounds),
                    self.shard,
                    self.cleanup,
                    on_second,
                    self.capacity,
                )
            except SlapRunError as exc:
                if exc.partial is not None:  # the summary shows what was done before the failure
                    done.append(SlapResult(workload, exc.partial, self.server.version))
                self._record(done, error=str(exc))
                raise SlapRunError(str(exc), exc.partial) from None
            except SlapInterrupted as exc:
                if exc.partial is not None:  # keep what was measured for the summary, then stop
                    done.append(SlapResult(workload, exc.partial, self.server.version))
                self._record(done, interrupted=True)
                raise KeyboardInterrupt from None
            done.append(SlapResult(workload, raw, self.server.version))
        self._record(done)
        return self.runs[-1].result

    def _checked(self, overrides: dict[str, Any], prefix: str) -> Workload:
        """This call's workload, with every check that needs the server or the call: before any load runs."""
        workload = Workload.from_args(overrides, base=self.workload) if overrides else self.workload
        parse_all(tuple(t.expr for t in self.thresholds), workload.measured_commands())
        check_key_size(workload, round_prefix(prefix, self.rounds, self.rounds))
        check_item_size(workload, self.server)
        if workload.transport == "udp" and self.server.udp is False:
            raise WorkloadError(
                "transport='udp': this memcached does not listen on UDP (the plugin starts it with -U 0); "
                "use @pytest.mark.memcached(udp=True) or --memcached-udp"
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
        return workload

    def _record(self, rounds: list[SlapResult], interrupted: bool = False, error: str | None = None) -> None:
        """Keep the call's rounds as one run; its result is the median round, carrying all of them."""
        if rounds:
            self.runs.append(SlapRun(rounds, interrupted, error))


def round_prefix(prefix: str, number: int, rounds: int) -> str:
    """Each round writes keys of its own, so a round never finds the previous round's data."""
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


def check_key_size(workload: Workload, prefix: str) -> None:
    """Every key must stay distinct under the call's prefix: the smallest key size must hold the prefix and index."""
    needed = min_key_size(prefix, workload.keys)
    smallest = min(low for low, _, _ in workload.key_size)
    if smallest < needed:
        raise WorkloadError(
            f"key_size: keys of {smallest} bytes are too short for {workload.keys} keys under the prefix "
            f"{prefix!r}; use key_size of at least {needed} (or fewer keys)"
        )


def check_item_size(workload: Workload, server: MemcachedServer) -> None:
    """Refuse values the server would reject as too large, before any load runs (when it says its limit)."""
    problem = workload.oversized_items(server.item_size_max())
    if problem:
        raise WorkloadError(f"value_size: {problem}; lower value_size, or start memcached with a larger -I")

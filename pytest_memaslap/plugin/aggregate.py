"""From shard reports to call outcomes: wait for every shard of a call, merge them, judge once."""

from __future__ import annotations

from pytest_memaslap.model.workload import Workload
from pytest_memaslap.plugin.messages import ShardReport
from pytest_memaslap.stats.outcome import CallOutcome, ShardLine, VersusRounds, judge
from pytest_memaslap.stats.result import SlapResult
from pytest_memaslap.stats.results import ShardResult, merge_results
from pytest_memaslap.stats.rounds import representative


class Aggregator:
    """Collects shard reports and turns a call's reports into its outcome once all of them have arrived."""

    def __init__(self) -> None:
        self._waiting: dict[str, dict[int, ShardReport]] = {}
        self._expected: dict[str, int] = {}
        self.done: list[CallOutcome] = []

    def add(self, report: ShardReport) -> CallOutcome | None:
        """Add one shard's report; return the call's outcome when it is the last shard in."""
        key = report.key
        self._expected[key] = report.shard_count
        shards = self._waiting.setdefault(key, {})
        shards[report.shard_index] = report
        if len(shards) < report.shard_count:
            return None
        del self._waiting[key]
        outcome = combine([shards[i] for i in sorted(shards)])
        self.done.append(outcome)
        return outcome

    def missing(self) -> list[tuple[str, list[int], int]]:
        """Calls with shards that never reported: (key, missing shard indices, shard count)."""
        return [
            (key, sorted(set(range(self._expected[key])) - set(shards)), self._expected[key])
            for key, shards in self._waiting.items()
        ]


def merged_rounds(per_shard: list[tuple[ShardResult, ...]], workload: Workload, version: str) -> list[SlapResult]:
    """Round k of every shard merged into round k."""
    rounds = []
    for k in range(max((len(r) for r in per_shard), default=0)):
        raws = [r[k] for r in per_shard if k < len(r)]
        merged = raws[0] if len(raws) == 1 else merge_results(raws)  # (one shard: nothing to merge or copy)
        rounds.append(SlapResult(workload, merged, version))
    return rounds


def combine(reports: list[ShardReport]) -> CallOutcome:
    """One call's outcome from its shards' reports: round k of every shard merged into round k, then judged."""
    first = reports[0]
    rounds = merged_rounds([r.rounds for r in reports], first.workload, first.memcached_version)
    versus = None
    if first.versus is not None:
        b = first.versus
        sides = [r.versus.rounds for r in reports if r.versus is not None]
        b_rounds = merged_rounds(sides, first.workload, b.version)
        versus = VersusRounds(b.address, b.version, b_rounds, b.order, first.allowances)
    median = representative(rounds)
    lines = tuple(ShardLine(r.shard_index, r.rounds[median]) for r in reports if median < len(r.rounds))
    return judge(
        first.nodeid,
        first.call,
        rounds,
        first.thresholds,
        first.enforced,
        interrupted=any(r.interrupted for r in reports),
        error=next((r.error for r in reports if r.error), None),
        shards=lines,
        strict=first.strict,
        versus=versus,
        validity_fails=first.validity_fails,
    )

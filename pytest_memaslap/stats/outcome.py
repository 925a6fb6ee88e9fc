"""One slap() call as reported: its merged result, judged once against its thresholds.

A ``CallOutcome`` is made in one place (``judge``) by the process that
reports (the only process, or the xdist controller once every shard is in).
The test's pass or fail, the terminal summary, the JSON document, the JUnit
properties and the HTML report all read the same object, so they cannot
disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pytest_memaslap.model.allowances import Allowance
from pytest_memaslap.model.metrics import DEFAULT_PERCENTILES
from pytest_memaslap.model.thresholds import Threshold, Verdict
from pytest_memaslap.stats.comparison import GatedRows, Row, compare_metric, compared_metrics
from pytest_memaslap.stats.result import SlapResult, read_metric
from pytest_memaslap.stats.results import ShardResult
from pytest_memaslap.stats.rounds import summarize, with_rounds
from pytest_memaslap.stats.verdicts import judge_thresholds

JUNIT_SCALARS = ("ops", "ops_per_sec", "errors", "hit_ratio", "duration_s")
JUNIT_LATENCIES = ("p50", "p99", "p999", "max")
JUNIT_COMMAND_SCALARS = ("ops", "ops_per_sec", "errors", "hit_ratio")


@dataclass(frozen=True)
class ShardLine:
    """One shard's share of the representative round (the JSON's ``per_shard``)."""

    index: int
    raw: ShardResult

    def to_dict(self) -> dict[str, Any]:
        measured = self.raw.measured
        elapsed = measured.elapsed_s
        return {
            "index": self.index,
            "ops": measured.ops,
            "ops_per_sec": round(measured.ops / elapsed, 1) if elapsed else 0.0,
            "errors": sum(c.errors for c in measured.commands.values()),
            "duration_s": round(elapsed, 6),
            "started_at": self.raw.started_at,
        }


@dataclass(frozen=True)
class Versus(GatedRows):
    """Interleaved A/B: B's rounds (paired with A's by number), the order each pair ran in, B against A."""

    address: str
    version: str
    result: SlapResult  # B's median round by throughput, carrying every round
    order: tuple[str, ...]  # each pair's order: "AB" or "BA"
    rows: tuple[Row, ...]

    def to_dict(self, percentiles: tuple[float, ...]) -> dict[str, Any]:
        """The call's ``versus`` section: B's server, the order of the pairs, B's result, each metric's verdict."""
        data = self.result.to_dict(percentiles)
        rounds = self.result.rounds or [self.result]
        data["rounds"] = summarize(rounds)
        return {
            "server": self.address,
            "memcached_version": self.version,
            "order": list(self.order),
            "comparison": [row.to_dict() for row in self.rows],
            "result": data,
        }


def versus_rows(
    key: str, a: list[SlapResult], b: list[SlapResult], allowances: tuple[Allowance, ...]
) -> tuple[Row, ...]:
    """B against A, metric by metric, the i-th rounds of both sides a pair."""
    pairs = min(len(a), len(b))  # (an interrupted call may end between the two sides of a pair)
    a, b = a[:pairs], b[:pairs]
    by_metric = {allowance.metric: allowance for allowance in allowances}
    rows = []
    for metric in compared_metrics(allowances):
        if metric == "capacity":
            continue  # (a capacity search is refused under A/B)
        old, new = [read_metric(r, metric) for r in a], [read_metric(r, metric) for r in b]
        if not old or any(v != v for v in old + new):  # (a command one side never sent)
            continue
        rows.append(compare_metric(key, metric, old, new, by_metric.get(metric), paired=True))
    return tuple(rows)


@dataclass(frozen=True)
class CallOutcome:
    """A slap() call's merged result (the median round, every round attached) and its verdicts."""

    nodeid: str
    call: int  # 1 for a test's first slap() call, 2 for its second, ...
    result: SlapResult
    verdicts: tuple[Verdict, ...]
    enforced: bool
    interrupted: bool = False
    error: str | None = None  # the call failed; ``result`` is what it did until then
    shards: tuple[ShardLine, ...] = ()
    strict: bool = False  # --slap-inconclusive=fail: an inconclusive threshold fails the test too
    versus: Versus | None = None  # --slap-versus*: B's rounds and B against A
    validity_fails: bool = False  # --slap-validity=fail: a failed validity check fails the test

    @property
    def key(self) -> str:
        """The name in the summary and the JSON: the node id, ``nodeid#2`` for a second call."""
        return self.nodeid if self.call == 1 else f"{self.nodeid}#{self.call}"

    @property
    def passed(self) -> bool:
        """No threshold failed (an inconclusive one fails only in strict mode), and with --slap-validity=fail, the
        run passed its validity checks."""
        if self.validity_fails and self.result.validity()["passed"] is False:
            return False
        return not any(v.failed or (self.strict and v.inconclusive) for v in self.verdicts)

    @property
    def fails_test(self) -> bool:
        """Whether the verdict fails the test: a missed threshold that is enforced."""
        return self.enforced and not self.passed

    @property
    def inconclusive(self) -> tuple[Verdict, ...]:
        return tuple(v for v in self.verdicts if v.inconclusive)

    @property
    def memcached_version(self) -> str:
        return self.result.server_version

    @property
    def start_skew_ms(self) -> float:
        """How far apart the shards started their measured phase."""
        starts = [line.raw.started_at for line in self.shards if line.raw.started_at]
        return round((max(starts) - min(starts)) * 1000, 3) if len(starts) > 1 else 0.0

    def verdict_text(self) -> str:
        """The summary's last column: pass counts, FAIL, or how the run ended."""
        if self.error:
            return "run failed"
        if self.interrupted:
            return "interrupted"
        if not self.verdicts:
            return "-"
        count = len(self.verdicts)
        failed = sum(1 for v in self.verdicts if v.failed)
        undecided = len(self.inconclusive)
        text = f"FAIL {failed}/{count}" if failed else f"{count - undecided}/{count} pass"
        if undecided:
            text += f", {undecided} inconclusive"
        return text if self.enforced else f"{text} (not enforced)"

    def threshold_rows(self) -> list[tuple[str, str, str, str, str]]:
        return [v.row() for v in self.verdicts]

    def result_data(self, percentiles: tuple[float, ...] = DEFAULT_PERCENTILES) -> dict[str, Any]:
        """The result's JSON form, with the rounds, how the call ended and the per-shard lines."""
        data = self.result.to_dict(percentiles)
        if self.result.rounds:
            data["rounds"] = summarize(self.result.rounds)
        data["interrupted"] = self.interrupted
        data["error"] = self.error
        data["start_skew_ms"] = self.start_skew_ms
        data["per_shard"] = [line.to_dict() for line in self.shards]
        return data

    def to_json(self, percentiles: tuple[float, ...] = DEFAULT_PERCENTILES) -> dict[str, Any]:
        """The call's entry in the JSON document."""
        data = self.result_data(percentiles)
        data["thresholds"] = [v.to_dict() for v in self.verdicts]
        data["thresholds_enforced"] = self.enforced
        data["inconclusive_fails"] = self.strict
        data["memcached_version"] = self.memcached_version
        data["versus"] = self.versus.to_dict(percentiles) if self.versus else None
        return data

    def junit_properties(self) -> list[tuple[str, Any]]:
        """For JUnit XML (``slap#2.`` for a second call): the totals, each command's, and the verdict.

        ``slap.ops_per_sec``, ``slap.p99_us`` (all commands), ``slap.get.p99_us``,
        ``slap.thresholds`` (``passed``, ``failed: EXPR; EXPR``, or ``none``); under A/B each compared
        metric's ``slap.versus.METRIC.change_pct`` and ``slap.versus.METRIC.verdict``.
        """
        prefix = "slap" if self.call == 1 else f"slap#{self.call}"
        data = self.result.to_dict()
        properties = [(f"{prefix}.{name}", data[name]) for name in JUNIT_SCALARS]
        properties += [(f"{prefix}.{name}_us", data["latency_us"][name]) for name in JUNIT_LATENCIES]
        for command, numbers in data["commands"].items():
            properties += [(f"{prefix}.{command}.{name}", numbers[name]) for name in JUNIT_COMMAND_SCALARS]
            properties += [(f"{prefix}.{command}.{name}_us", numbers["latency_us"][name]) for name in JUNIT_LATENCIES]
        failed = [v.threshold.expr for v in self.verdicts if v.failed]
        undecided = [v.threshold.expr for v in self.verdicts if v.inconclusive]
        verdict = "none" if not self.verdicts else f"failed: {'; '.join(failed)}" if failed else "passed"
        if undecided:
            verdict += f"; inconclusive: {'; '.join(undecided)}"
        properties.append((f"{prefix}.thresholds", verdict))
        for row in self.versus.rows if self.versus else ():  # B against A: ``slap.versus.ops_per_sec.verdict``
            change = row.change.estimate_pct
            properties.append(
                (f"{prefix}.versus.{row.metric}.change_pct", None if change is None else round(change, 2))
            )
            properties.append((f"{prefix}.versus.{row.metric}.verdict", row.verdict.word))
        return properties


def judge(
    nodeid: str,
    call: int,
    rounds: list[SlapResult],
    thresholds: tuple[Threshold, ...],
    enforced: bool,
    *,
    interrupted: bool = False,
    error: str | None = None,
    shards: tuple[ShardLine, ...] = (),
    strict: bool = False,
    versus: VersusRounds | None = None,
    validity_fails: bool = False,
) -> CallOutcome:
    """The call's outcome: the median round by throughput carries every round; thresholds judge it once,
    on their intervals; with A/B rounds, B is compared with A pair by pair."""
    result = with_rounds(rounds)
    verdicts = judge_thresholds(thresholds, result)
    judged = None
    if versus is not None and versus.rounds:
        key = nodeid if call == 1 else f"{nodeid}#{call}"
        rows = versus_rows(key, rounds, versus.rounds, versus.allowances)
        judged = Versus(versus.address, versus.version, with_rounds(versus.rounds), versus.order, rows)
    return CallOutcome(
        nodeid, call, result, verdicts, enforced, interrupted, error, shards, strict, judged, validity_fails
    )


@dataclass(frozen=True)
class VersusRounds:
    """What an A/B call hands to ``judge``: B's rounds, in pair order, and how to judge them."""

    address: str
    version: str
    rounds: list[SlapResult]
    order: tuple[str, ...]
    allowances: tuple[Allowance, ...] = ()

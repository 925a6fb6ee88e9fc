"""Comparisons of two sides, metric by metric: each side's rounds, the change with its interval, a verdict.

Both gates that compare use it: a run against a saved baseline (unpaired
rounds, read from two JSON documents by ``output.baseline``) and
interleaved A/B in one run (paired rounds, ``--slap-versus``). Pure: the
sides arrive as lists of numbers.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from pytest_memaslap.model.allowances import Allowance, higher_is_better
from pytest_memaslap.model.thresholds import INCONCLUSIVE
from pytest_memaslap.stats.intervals import Change, change_interval
from pytest_memaslap.stats.verdicts import REGRESSION, ChangeVerdict, judge_change

# what every comparison shows, besides the metrics an allowance names (capacity: searches only)
DEFAULT_METRICS = ("ops_per_sec", "p99", "get.p99", "set.p99", "errors", "capacity")


@dataclass(frozen=True)
class Row:
    """One metric of one test: both sides' rounds, the change (B against A, in %) and its verdict."""

    test: str
    metric: str
    baseline_values: tuple[float, ...]
    current_values: tuple[float, ...]
    change: Change
    verdict: ChangeVerdict
    allowance: float | None = None  # percent, when --slap-compare-fail names this metric

    @property
    def baseline(self) -> float | None:
        """The baseline's centre: the geometric mean of its rounds (the value of a single round)."""
        return centre(self.baseline_values)

    @property
    def current(self) -> float | None:
        return centre(self.current_values)

    @property
    def change_pct(self) -> float | None:
        return self.change.estimate_pct

    @property
    def gated(self) -> bool:
        return self.allowance is not None

    @property
    def regression(self) -> bool:
        """A regression past an allowance: what fails a gate."""
        return self.gated and self.verdict.word == REGRESSION

    @property
    def inconclusive(self) -> bool:
        return self.gated and self.verdict.word == INCONCLUSIVE

    def to_dict(self) -> dict[str, object]:
        change = self.change
        return {
            "metric": self.metric,
            "baseline": _round(self.baseline),
            "current": _round(self.current),
            "change_pct": _round(change.estimate_pct),
            "interval_pct": None if not change.has_interval else [_round(change.low_pct), _round(change.high_pct)],
            "rounds": list(change.rounds),
            "paired": change.paired,
            "allowance_pct": self.allowance,
            "verdict": self.verdict.word,
            "why": self.verdict.why or None,
            "more_rounds": self.verdict.more_rounds,
            "baseline_values": [round(v, 6) for v in self.baseline_values],
            "current_values": [round(v, 6) for v in self.current_values],
        }


class GatedRows:
    """What fails a gate among a comparison's rows (a run against a baseline, or B against A)."""

    rows: tuple[Row, ...]

    @property
    def regressions(self) -> tuple[Row, ...]:
        return tuple(row for row in self.rows if row.regression)

    @property
    def inconclusive(self) -> tuple[Row, ...]:
        return tuple(row for row in self.rows if row.inconclusive)


def _round(value: float | None) -> float | None:
    """JSON has no infinity (a change from 0 errors to some): null, beside the verdict that says what it was."""
    return None if value is None or not math.isfinite(value) else round(value, 6)


def centre(values: Sequence[float]) -> float | None:
    """The centre a change is measured between: geometric mean when every value is positive, else the mean."""
    if not values:
        return None
    if all(v > 0 for v in values):
        return math.exp(statistics.fmean(math.log(v) for v in values))
    return statistics.fmean(values)


def compare_metric(
    test: str,
    metric: str,
    baseline: Sequence[float],
    current: Sequence[float],
    allowance: Allowance | None,
    paired: bool = False,
) -> Row:
    """One row: the change of ``metric`` from ``baseline``'s rounds to ``current``'s, judged against its allowance."""
    change = change_interval(baseline, current, paired)
    verdict = judge_change(change, allowance.percent if allowance else None, higher_is_better(metric))
    return Row(test, metric, tuple(baseline), tuple(current), change, verdict, allowance.percent if allowance else None)


def compared_metrics(allowances: tuple[Allowance, ...]) -> list[str]:
    """The metrics every comparison shows, then those only an allowance names."""
    return list(DEFAULT_METRICS) + [a.metric for a in allowances if a.metric not in DEFAULT_METRICS]


def inconclusive_note(rows: Sequence[Row], fails: bool = False) -> str | None:
    """One line under a comparison when a gated metric is inconclusive: what would decide it, what it does."""
    undecided = [row for row in rows if row.inconclusive]
    if not undecided:
        return None
    consequence = (
        "they fail the run (--slap-inconclusive=fail)"
        if fails
        else "they do not fail the run unless --slap-inconclusive=fail"
    )
    unknown = [row for row in undecided if not row.change.has_interval]
    if unknown:
        return (
            "inconclusive: a side has a single round, so its noise is unknown and no interval can be made; "
            f"give both runs --slap-rounds=N (5 or more) to judge; {consequence}"
        )
    hints = [row.verdict.more_rounds for row in undecided]
    more = max((h for h in hints if h is not None), default=None)
    advice = f"about {more} more rounds would likely decide" if more else "more rounds would likely not decide"
    return (
        f"inconclusive: {len(undecided)} gated metric(s) have intervals that straddle the allowance ({advice}); "
        f"{consequence}"
    )

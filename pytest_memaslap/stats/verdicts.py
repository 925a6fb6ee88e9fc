"""Verdict rules: from a change or a measured number with its interval to one word, and why.

A comparison (B against A, or a run against a saved baseline) of a metric
with an allowance ``a`` (``ops_per_sec:-5%``: a = 5, the bad direction is
down) is, with its 95 % interval of the change in the bad direction
``[lo, hi]`` and the estimate ``e`` (all in %, worse > 0):

- ``regression``: lo > 0 and e > a: worse with 97.5 % confidence, and by
  more than the allowance by the best estimate;
- ``improvement``: hi < 0 and e < -a: the mirror image;
- ``no change``: -a < lo and hi < a: any change is within the allowance
  (or nothing moved at all: ``errors`` 0 on both sides);
- ``inconclusive``: anything else (the interval straddles the allowance, or
  a side has a single round, so its noise is unknown).

Only ``regression`` fails a gate. With a valid interval, an unchanged build
is called a regression at most 2.5 % of the time (lo > 0 alone). Measured on
a 2-core VM (docs/gating.md): 0 of 20 interleaved A/A pairs, 1 of
20 saved-baseline pairs (the machine drifted 7 % between the two sessions,
which neither side's rounds can see).
A metric with no allowance has a = 0: ``regression`` or ``improvement`` when
its interval excludes 0, else ``inconclusive``; it never fails the session.

A threshold (``get.p99 < 2ms``) with its 95 % interval is ``pass`` when the
rule holds at both ends of the interval, ``FAIL`` when it fails at both, and
``inconclusive`` otherwise; a ``FAIL`` while the load generator itself
limited the results is ``inconclusive (load generator limited)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from pytest_memaslap.model.metrics import ENGINE_GROUPS, PROBE_GROUP, RATE_METRICS, SERVER_GROUP, parse_metric
from pytest_memaslap.model.thresholds import FAIL, INCONCLUSIVE, PASS, Threshold, Verdict
from pytest_memaslap.stats.histogram import Histogram
from pytest_memaslap.stats.intervals import (
    Change,
    Interval,
    batch_interval,
    exact,
    percentile_interval,
    rounds_interval,
    t_quantile,
)
from pytest_memaslap.stats.result import SlapResult, read_metric

REGRESSION = "regression"
IMPROVEMENT = "improvement"
NO_CHANGE = "no change"
MAX_ROUNDS_HINT = 200  # beyond this, "more rounds" is no advice: the change sits on the allowance


@dataclass(frozen=True)
class ChangeVerdict:
    """One word for a change, and what would decide it when it is ``inconclusive``."""

    word: str
    why: str = ""  # inconclusive: why, and how many more rounds would likely decide
    more_rounds: int | None = None  # inconclusive: rounds a side (or pairs) that would likely decide; None: unknown

    @property
    def text(self) -> str:
        return f"{self.word} ({self.why})" if self.why else self.word


def judge_change(change: Change, allowance_pct: float | None, higher_is_better: bool) -> ChangeVerdict:
    """The verdict of a change against an allowance (None: not gated, allowance 0), as the module says."""
    if change.estimate_pct is None:
        return ChangeVerdict(INCONCLUSIVE, "no number on a side")
    a = abs(allowance_pct or 0.0)
    sign = -1.0 if higher_is_better else 1.0  # the bad direction as positive
    estimate = sign * change.estimate_pct
    if not change.has_interval:
        rounds = min(change.rounds)
        return ChangeVerdict(INCONCLUSIVE, f"{rounds} round{'s' if rounds != 1 else ''} a side: noise unknown")
    assert change.low_pct is not None and change.high_pct is not None
    low, high = sorted((sign * change.low_pct, sign * change.high_pct))
    if low > 0 and estimate > a:
        return ChangeVerdict(REGRESSION)
    if high < 0 and estimate < -a:
        return ChangeVerdict(IMPROVEMENT)
    if (-a < low and high < a) or low == high == 0:  # (or exactly nothing moved: errors 0 on both sides)
        return ChangeVerdict(NO_CHANGE)
    more = more_rounds(change, allowance_pct or 0.0, higher_is_better)
    if more is None:
        hint = "more rounds would likely not decide: the change sits on the allowance"
    else:
        hint = f"about {more} more round{'s' if more != 1 else ''}{' (pairs)' if change.paired else ' a side'}"
    return ChangeVerdict(INCONCLUSIVE, f"the interval straddles the allowance; {hint}", more)


def more_rounds(change: Change, allowance_pct: float, higher_is_better: bool) -> int | None:
    """Rounds to add (a side, or pairs) for the interval to likely decide, if the estimate stays where it is.

    The interval's half width shrinks as one over the square root of the
    rounds: the rounds n' at which the half width would clear the nearest
    boundary that decides (0 for a regression or an improvement past the
    allowance, the allowance for ``no change``) are n * (h / d)^2. None when
    that is more than ``MAX_ROUNDS_HINT`` or cannot be told.
    """
    if change.estimate_pct is None or not change.has_interval or change.spread is None or change.df is None:
        return None
    assert change.low_pct is not None and change.high_pct is not None
    a = abs(allowance_pct)
    estimate = change.estimate_pct if not higher_is_better else -change.estimate_pct
    low, high = sorted((-change.low_pct, -change.high_pct) if higher_is_better else (change.low_pct, change.high_pct))
    half = (high - low) / 2.0
    if abs(estimate) > a:
        distance = abs(estimate)  # past the allowance: the interval must clear 0
    else:
        distance = a - abs(estimate)  # within it: the interval must fit inside it
    if half <= 0 or distance <= 0:
        return None
    n = min(change.rounds)
    # the t quantile also falls as rounds grow; use the large-sample one for the target, a little optimistic
    needed = n * (half / distance) ** 2 * (1.96 / t_quantile(change.df)) ** 2
    extra = max(1, math.ceil(needed - n))
    return extra if extra <= MAX_ROUNDS_HINT else None


# -- thresholds -------------------------------------------------------------------

LOAD_GENERATOR_LIMITED = "load generator limited"


def judge_threshold(threshold: Threshold, result: SlapResult) -> Verdict:
    """A threshold on a call's result, judged on the metric's 95 % interval as the module says."""
    measured = threshold.measure(result)
    interval = metric_interval(result, threshold.name)
    if interval is None or interval.method == "exact":
        state = PASS if threshold.holds(measured) else FAIL
        method = "" if interval is None else "exact"
        return _limited(Verdict(threshold, measured, state, None, method), result)
    ends = (threshold.holds(interval.low), threshold.holds(interval.high))
    state = PASS if all(ends) else FAIL if not any(ends) else INCONCLUSIVE
    why = ""
    if state == INCONCLUSIVE:
        why = "the interval straddles the limit"
        if interval.method == "lower bound":
            why = "no step of the search failed: the capacity is at least the measured rate"
        elif interval.method == "rounds":
            more = threshold_more_rounds(interval, threshold.required)
            why += f"; about {more} more rounds would likely decide" if more else "; the limit sits on the estimate"
    verdict = Verdict(threshold, measured, state, (interval.low, interval.high), interval.method, why)
    return _limited(verdict, result)


def threshold_more_rounds(interval: Interval, required: float) -> int | None:
    """Rounds to add for a rounds interval to clear ``required``, if the estimate stays (as ``more_rounds``)."""
    positive = min(interval.low, interval.estimate, required) > 0
    scale = math.log if positive else float
    half = (scale(interval.high) - scale(interval.low)) / 2.0
    distance = abs(scale(interval.estimate) - scale(required))
    if half <= 0 or distance <= 0 or interval.samples < 2:
        return None
    n = interval.samples
    needed = n * (half / distance) ** 2 * (1.96 / t_quantile(n - 1)) ** 2
    extra = max(1, math.ceil(needed - n))
    return extra if extra <= MAX_ROUNDS_HINT else None


def _limited(verdict: Verdict, result: SlapResult) -> Verdict:
    """A failure while the load generator limited the results says nothing of the server: inconclusive.

    Not for the server's own figures (``server.*``): its counters are what it did, however busy the client.
    """
    if verdict.state == PASS or verdict.threshold.command == SERVER_GROUP or not result.limited_by_load_generator():
        return verdict
    return replace(verdict, state=INCONCLUSIVE, why=LOAD_GENERATOR_LIMITED)


def judge_thresholds(thresholds: tuple[Threshold, ...], result: SlapResult) -> tuple[Verdict, ...]:
    return tuple(judge_threshold(t, result) for t in thresholds)


def metric_interval(result: SlapResult, name: str) -> Interval | None:
    """The 95 % interval of a metric of a call's result; None where none can be made.

    With two or more rounds: over the rounds (``rounds_interval``), for every
    metric. With one: a percentile from order statistics widened by the
    per-second percentiles, a rate from batch means over the per-second
    throughput; counts, ratios, durations and the max are exact for the run
    (their noise shows only across rounds). Per-command rates and
    percentiles take the run's per-second spread of all commands.
    """
    if len(result.rounds) > 1:
        return rounds_interval([read_metric(r, name) for r in result.rounds])
    metric = parse_metric(name)
    if metric.command in ENGINE_GROUPS:
        return None  # (the load generator's own lateness: reported, not sampled)
    if metric.command == SERVER_GROUP:  # (the server's counters over the phase: exact for the run)
        value = read_metric(result, name)
        return exact(value) if value == value else None
    value = read_metric(result, name)
    if value != value:
        return None
    if metric.metric == "capacity":  # (a search is one run: its answer is exact, or a lower bound when no step failed)
        lower_bound = bool(result.raw.capacity and result.raw.capacity.get("lower_bound"))
        return Interval(value, value, math.inf, "lower bound", 1) if lower_bound else exact(value)
    seconds = result.raw.measured.timeline[: int(result.duration)]  # (whole seconds: the last may be partial)
    q = metric.percentile
    if metric.command == PROBE_GROUP:  # (the probe's own sample: order statistics, its seconds not kept)
        return percentile_interval(result.probe.histogram, q) if q is not None and result.probe else exact(value)
    if q is not None:
        source = result.commands.get(metric.command) if metric.command else result.total
        if source is None:
            return None
        per_second = [Histogram.from_sparse(second.latency) for second in seconds]
        return percentile_interval(source.histogram, q, per_second, result.effective_share())
    if metric.metric in RATE_METRICS:
        batches = batch_interval([float(second.ops) for second in seconds])
        if batches is None or batches.estimate <= 0:
            return None
        scale = value / batches.estimate
        return Interval(value, batches.low * scale, batches.high * scale, batches.method, batches.samples)
    return exact(value)

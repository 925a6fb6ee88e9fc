"""95 % confidence intervals for the numbers a gate judges: pure functions of numbers.

On a shared machine one run swings by 8-14 %, so a number that fails a test
or blocks a merge is judged with its interval. Which method fits depends on
where the samples come from:

- **rounds** (repetitions of a workload, each with keys of its own) are close
  to independent: a Student t interval on the logarithms of the values, so
  the interval is for the geometric mean and a change is a ratio
  (``rounds_interval``, ``change_interval``). Logarithms make a throughput's
  or a latency's right-skewed spread symmetric, and a change of -10 % the
  same size whether measured from A or from B.
- **two sides of interleaved rounds** (A and B alternating in randomized
  order within each pair) are paired: the interval is a t interval on the
  pairs' log ratios, so the machine's drift from minute to minute, which both
  sides of a pair share, cancels (Abedi and Brecht, "Conducting Repeatable
  Experiments in Highly Variable Cloud Computing Environments", ICPE 2017).
- **a percentile of one run**: binomial order statistics, as Lancet (Kogias
  et al., ATC 2019) and Le Boudec (Performance Evaluation of Computer and
  Communication Systems, 2010, thm. 2.1) compute them: the ranks between
  which the true quantile lies with 95 % probability, read off the histogram.
  They assume independent samples, which a closed loop's queueing breaks, so
  ``percentile_interval`` widens them to the spread of the per-second
  percentiles when the run has enough seconds (batch means, below).
- **a rate of one run**: per-second samples are autocorrelated, so no t test
  on seconds; batch means over blocks of whole seconds (Law and Kelton,
  Simulation Modeling and Analysis, ch. 9.5), with at least 3 blocks.

Every interval here has its coverage measured on simulated data with known
answers in ``tests/test_intervals.py``. The quantiles come from
``scipy.special``, loaded on first use (a session that judges nothing never
imports it).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from pytest_memaslap.stats.histogram import Histogram, bucket_value

LEVEL = 0.95  # every interval here is a two-sided 95 % interval
MIN_BATCHES = 3  # a batch-means interval needs at least this many blocks of seconds
BATCH_SECONDS_MIN = 1  # one second per batch when the run is short; longer runs batch more seconds each


def t_quantile(df: float) -> float:
    """Student's t quantile for a two-sided 95 % interval with ``df`` degrees of freedom."""
    from scipy import special

    return float(special.stdtrit(df, 0.5 + LEVEL / 2))


@dataclass(frozen=True)
class Interval:
    """A judged number and its 95 % interval, in the metric's own unit; ``method`` says how it was made."""

    estimate: float
    low: float
    high: float
    method: str  # "rounds", "order statistics", "seconds", or "exact" (a count: no sampling error)
    samples: int  # rounds, seconds or requests behind it

    @property
    def half_width_pct(self) -> float:
        """Half the interval's width in % of the estimate (inf when the estimate is 0)."""
        if self.estimate == 0:
            return 0.0 if self.high == self.low else math.inf
        return (self.high - self.low) / 2 / abs(self.estimate) * 100.0

    def to_dict(self) -> dict[str, float | str | int]:
        return {
            "estimate": round(self.estimate, 6),
            "low": round(self.low, 6),
            "high": round(self.high, 6),
            "method": self.method,
            "samples": self.samples,
        }


def exact(value: float) -> Interval:
    """A number without sampling error in this run (a count, a ratio of counts): its interval is itself."""
    return Interval(value, value, value, "exact", 1)


def rounds_interval(values: Sequence[float]) -> Interval | None:
    """A t interval over independent rounds: on logarithms (geometric mean) when every value is positive.

    None for fewer than 2 rounds (no estimate of the noise). With a zero or a
    negative value among them (``errors``), the interval is on the values
    themselves (arithmetic mean).
    """
    n = len(values)
    if n < 2:
        return None
    positive = all(v > 0 for v in values)
    points = [math.log(v) for v in values] if positive else [float(v) for v in values]
    mean = statistics.fmean(points)
    half = t_quantile(n - 1) * statistics.stdev(points) / math.sqrt(n)
    if positive:
        return Interval(math.exp(mean), math.exp(mean - half), math.exp(mean + half), "rounds", n)
    return Interval(mean, mean - half, mean + half, "rounds", n)


def batch_interval(per_second: Sequence[float]) -> Interval | None:
    """Batch means over a run's per-second values: the mean rate and its interval; None when too short.

    Seconds are grouped into ``MIN_BATCHES`` or more blocks of equal length
    (a block of b seconds where b grows as the square root of the run's
    length, the usual batch-size rule), a t interval is made over the blocks'
    means. Correlation shorter than a block does not shrink it, as it would
    a t interval over single seconds.
    """
    n = len(per_second)
    if n < MIN_BATCHES:
        return None
    size = max(BATCH_SECONDS_MIN, math.isqrt(n))
    while size > 1 and n // size < MIN_BATCHES:
        size -= 1
    count = n // size
    used = per_second[n - count * size :]  # (the first seconds go when n is not a multiple: warm-up is likelier there)
    means = [statistics.fmean(used[i * size : (i + 1) * size]) for i in range(count)]
    interval = rounds_interval(means)
    if interval is None:  # (count >= MIN_BATCHES >= 2: never)
        return None
    estimate = statistics.fmean(per_second)
    scale = estimate / interval.estimate if interval.estimate else 1.0  # (the interval around the run's own mean)
    return Interval(estimate, interval.low * scale, interval.high * scale, "seconds", n)


def order_statistic_ranks(total: int, q: float) -> tuple[int, int] | None:
    """The 1-based ranks (low, high) that bound the q-th percentile of ``total`` samples with 95 % confidence.

    From the binomial distribution of how many samples fall below the true
    quantile (Le Boudec, thm. 2.1): low is the largest rank j with
    P(Bin(total, q) < j) <= 2.5 %, high the smallest k with P(Bin < k) >= 97.5 %.
    None when the run has too few samples for the percentile (the interval
    would run past the smallest or the largest sample).
    """
    from scipy import special

    if total < 1 or not 0 < q < 100:
        return None
    p = q / 100.0
    tail = (1 - LEVEL) / 2
    # bdtr(k, n, p) = P(Bin(n, p) <= k); search the ranks around n*p, where the binomial's mass is
    low = _binomial_rank(total, p, tail, special)
    high = _binomial_rank(total, p, 1 - tail, special) + 1
    if low < 1 or high > total:
        return None
    return low, high


def _binomial_rank(total: int, p: float, target: float, special: object) -> int:
    """The smallest k with P(Bin(total, p) <= k) >= target (by bisection on the CDF)."""
    bdtr = special.bdtr  # type: ignore[attr-defined]
    low, high = -1, total  # P(<= -1) = 0 < target <= P(<= total) = 1
    while high - low > 1:
        middle = (low + high) // 2
        if bdtr(middle, total, p) >= target:
            high = middle
        else:
            low = middle
    return high


def value_at_rank(histogram: Histogram, rank: int) -> float:
    """The value (ns) of the ``rank``-th smallest sample (1-based), as the histogram's buckets give it."""
    seen = 0
    for index, count in enumerate(histogram.counts):
        seen += count
        if count and seen >= rank:
            return bucket_value(index)
    return histogram.max()


def percentile_interval(
    histogram: Histogram, q: float, per_second: Sequence[Histogram] = (), effective_share: float = 1.0
) -> Interval | None:
    """The q-th percentile of one run (µs) with its interval; None when the run has too few samples.

    Order statistics give the interval for independent samples; a run's
    latencies are not (a stall delays every request in flight). Successive
    latencies that correlate (``effective_share`` < 1: the share of the
    samples that count as independent, from the validity check) make the
    order-statistic ranks those of that many samples, scaled back to the
    run's. And when the run has at least ``MIN_BATCHES`` seconds with
    samples, the interval is widened to the batch-means interval of the
    per-second percentiles, taken relative to their mean (whichever is wider
    on each side).
    """
    total = histogram.total
    effective = max(1, int(total * min(1.0, max(effective_share, 0.0))))
    ranks = order_statistic_ranks(effective, q)
    if ranks is None:
        return None
    if effective < total:  # (the ranks of the effective samples, at the same quantiles of the run's)
        ranks = (max(1, math.floor(ranks[0] * total / effective)), min(total, math.ceil(ranks[1] * total / effective)))
    estimate = histogram.percentile(q) / 1000.0
    low = value_at_rank(histogram, ranks[0]) / 1000.0
    high = value_at_rank(histogram, ranks[1]) / 1000.0
    method = "order statistics" if effective == total else "order statistics of dependent samples"
    seconds = [h.percentile(q) / 1000.0 for h in per_second if h.total]
    batches = batch_interval(seconds)
    if batches is not None and batches.estimate > 0:
        low_ratio, high_ratio = batches.low / batches.estimate, batches.high / batches.estimate
        if estimate * low_ratio < low or estimate * high_ratio > high:
            low, high = min(low, estimate * low_ratio), max(high, estimate * high_ratio)
            method = "order statistics and seconds"
    return Interval(estimate, min(low, estimate), max(high, estimate), method, histogram.total)


@dataclass(frozen=True)
class Change:
    """How B moved against A, in % of A: the estimate and its 95 % interval (None: fewer than 2 rounds a side).

    ``spread`` is the standard error on the scale the interval was made on
    (log ratio, or % of A's mean): what more rounds would shrink.
    """

    estimate_pct: float | None
    low_pct: float | None
    high_pct: float | None
    rounds: tuple[int, int]  # (A's, B's); interleaved: pairs each
    paired: bool
    spread: float | None = None  # the standard error the interval was made from
    df: float | None = None

    @property
    def has_interval(self) -> bool:
        return self.low_pct is not None and self.high_pct is not None


def change_interval(baseline: Sequence[float], current: Sequence[float], paired: bool = False) -> Change:
    """current against baseline in %: the ratio of geometric means, with a t interval on log ratios.

    ``paired``: the i-th values of both sides are one interleaved pair (same
    minutes): a paired t interval on their log ratios. Otherwise Welch's
    interval on the difference of mean logs (the sides' variances may differ:
    a saved baseline from another day). Zero or negative values (``errors``)
    fall back to the values themselves, the change in % of the baseline's mean
    (None when that is 0). Fewer than 2 rounds on a side: the estimate only.
    """
    na, nb = len(baseline), len(current)
    if not na or not nb:
        return Change(None, None, None, (na, nb), paired)
    if paired and na != nb:
        raise ValueError(f"paired rounds need as many on each side, not {na} and {nb}")
    logs = all(v > 0 for v in baseline) and all(v > 0 for v in current)
    if logs:
        a = [math.log(v) for v in baseline]
        b = [math.log(v) for v in current]
        scale = 1.0
    else:
        base_mean = statistics.fmean(baseline)
        if base_mean == 0:
            return _from_zero(baseline, current, paired)
        a, b, scale = list(map(float, baseline)), list(map(float, current)), 100.0 / abs(base_mean)
    difference = statistics.fmean(b) - statistics.fmean(a)
    estimate = _as_pct(difference, logs, scale)
    if paired:
        if na < 2:
            return Change(estimate, None, None, (na, nb), True)
        deltas = [y - x for x, y in zip(a, b, strict=True)]
        se = statistics.stdev(deltas) / math.sqrt(na)
        df: float = na - 1
    else:
        if na < 2 or nb < 2:
            return Change(estimate, None, None, (na, nb), False)
        va, vb = statistics.variance(a) / na, statistics.variance(b) / nb
        se = math.sqrt(va + vb)
        # Welch-Satterthwaite degrees of freedom (both variances 0: the sides are constant, the interval a point)
        df = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1)) if va + vb > 0 else float(na + nb - 2)
    half = t_quantile(df) * se
    low, high = _as_pct(difference - half, logs, scale), _as_pct(difference + half, logs, scale)
    return Change(estimate, low, high, (na, nb), paired, se * (1.0 if logs else scale), df)


def _from_zero(baseline: Sequence[float], current: Sequence[float], paired: bool) -> Change:
    """A baseline of zeros (``errors``): no change when the current side is all zeros too; otherwise an infinite
    rise, whose interval is clear of 0 when the current side's own interval is (fewer than 2 rounds: unknown)."""
    rounds = (len(baseline), len(current))
    if all(v == 0 for v in baseline) and all(v == 0 for v in current):
        return Change(0.0, 0.0, 0.0, rounds, paired)
    mean = statistics.fmean(current)
    sign = math.copysign(math.inf, mean) if mean else 0.0
    own = rounds_interval([float(v) for v in current]) if all(v == 0 for v in baseline) else None
    if own is None:
        return Change(sign or None, None, None, rounds, paired)
    clear = own.low > 0 or own.high < 0
    return Change(sign, sign if clear else min(sign, 0.0), sign if clear else max(sign, 0.0), rounds, paired)


def _as_pct(difference: float, logs: bool, scale: float) -> float:
    return (math.exp(difference) - 1.0) * 100.0 if logs else difference * scale

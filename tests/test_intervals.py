"""The verdicts' statistics on simulated data with known answers: intervals cover the truth about 95 % of the time.

Every simulation has a fixed seed, so the suite never flakes; the bounds on
coverage are wide enough for the number of simulations (a binomial's 99.9 %
range around 95 %) and tight enough to catch a wrong quantile or a
forgotten square root.
"""

from __future__ import annotations

import math
import random

import pytest

from pytest_memaslap.model.allowances import parse_allowances
from pytest_memaslap.stats.comparison import compare_metric
from pytest_memaslap.stats.histogram import Histogram
from pytest_memaslap.stats.intervals import (
    Change,
    batch_interval,
    change_interval,
    order_statistic_ranks,
    percentile_interval,
    rounds_interval,
    t_quantile,
)
from pytest_memaslap.stats.verdicts import judge_change, more_rounds


def _coverage(hits: int, n: int) -> float:
    return hits / n


def test_t_quantiles_are_students():
    assert t_quantile(1) == pytest.approx(12.706, abs=1e-3)
    assert t_quantile(4) == pytest.approx(2.776, abs=1e-3)
    assert t_quantile(1e6) == pytest.approx(1.960, abs=1e-3)


def test_rounds_interval_covers_the_geometric_mean_about_95_percent_of_the_time():
    rng = random.Random(7)
    truth, sigma, hits, n = 100_000.0, 0.08, 0, 4000  # an 8 % spread, as ops/s swing on a shared VM
    for _ in range(n):
        values = [truth * math.exp(rng.gauss(0, sigma)) for _ in range(5)]
        interval = rounds_interval(values)
        assert interval is not None
        hits += interval.low <= truth <= interval.high
    assert 0.935 <= _coverage(hits, n) <= 0.965


def test_rounds_interval_needs_two_rounds_and_takes_zeros():
    assert rounds_interval([5.0]) is None
    interval = rounds_interval([0.0, 2.0, 4.0])
    assert interval is not None and interval.estimate == 2.0 and interval.low < 0 < 4 < interval.high


@pytest.mark.parametrize("paired", [False, True])
def test_change_interval_covers_the_true_ratio(paired):
    """A real 10 % drop: the interval of B against A covers -10 % about 95 % of the time, paired or not."""
    rng = random.Random(11 + paired)
    ratio, hits, n = 0.90, 0, 3000
    for _ in range(n):
        drift = [rng.gauss(0, 0.10) for _ in range(8)]  # the machine's minute-to-minute drift, shared by a pair
        a = [1e5 * math.exp(d + rng.gauss(0, 0.04)) for d in drift]
        b = [1e5 * ratio * math.exp((d if paired else rng.gauss(0, 0.10)) + rng.gauss(0, 0.04)) for d in drift]
        change = change_interval(a, b, paired)
        assert change.low_pct is not None and change.high_pct is not None
        hits += change.low_pct <= -10.0 <= change.high_pct
    assert 0.935 <= _coverage(hits, n) <= 0.965


def test_pairing_cancels_the_drift_both_sides_of_a_pair_share():
    rng = random.Random(3)
    drift = [rng.gauss(0, 0.10) for _ in range(8)]
    a = [1e5 * math.exp(d + rng.gauss(0, 0.02)) for d in drift]
    b = [0.9e5 * math.exp(d + rng.gauss(0, 0.02)) for d in drift]
    paired, unpaired = change_interval(a, b, paired=True), change_interval(a, b, paired=False)
    width = lambda c: c.high_pct - c.low_pct  # noqa: E731
    assert width(paired) * 3 < width(unpaired)
    assert paired.estimate_pct == pytest.approx(-10.0, abs=2.0)


def test_changes_with_a_single_round_or_zeros():
    one = change_interval([100.0], [90.0, 91.0])
    assert one.estimate_pct == pytest.approx(-9.5, abs=0.1) and not one.has_interval
    assert change_interval([0.0, 0.0], [0.0, 0.0]).estimate_pct == 0.0
    errors = change_interval([0.0, 0.0, 0.0], [40.0, 50.0, 45.0])
    assert errors.estimate_pct == math.inf and errors.low_pct == math.inf  # from none to some in every round
    with pytest.raises(ValueError, match="as many on each side"):
        change_interval([1.0, 2.0], [1.0], paired=True)


def test_order_statistic_ranks_match_the_published_table():
    """The median of 100 samples: ranks 40 and 61 (Le Boudec, table A.1); p99 of 1e6 near 989,804 .. 990,195."""
    assert order_statistic_ranks(100, 50.0) == (40, 61)
    low, high = order_statistic_ranks(1_000_000, 99.0)
    assert 989_790 <= low <= 989_810 and 990_190 <= high <= 990_210
    assert order_statistic_ranks(50, 99.9) is None  # too few samples for the tail asked for


def test_percentile_interval_covers_the_true_quantile_of_independent_samples():
    rng = random.Random(5)
    scale_ns, q = 100_000.0, 90.0
    truth_us = -math.log(1 - q / 100) * scale_ns / 1000
    hits, n = 0, 400
    for _ in range(n):
        histogram = Histogram()
        for _ in range(1000):
            histogram.record(int(rng.expovariate(1 / scale_ns)))
        interval = percentile_interval(histogram, q)
        assert interval is not None and interval.method == "order statistics"
        hits += interval.low * 0.996 <= truth_us <= interval.high * 1.004  # (the buckets' 0.4 % resolution)
    assert 0.92 <= _coverage(hits, n) <= 0.98


def test_percentile_interval_widens_to_the_spread_of_the_seconds():
    """Latencies that move together second by second (a stall, a slow minute) widen the order-statistic interval."""
    rng = random.Random(9)
    whole, seconds = Histogram(), []
    for second in range(10):
        level = 1.0 + 0.5 * (second % 3)  # seconds at three levels of latency
        hist = Histogram()
        for _ in range(2000):
            value = int(rng.expovariate(1 / (50_000 * level)))
            hist.record(value)
            whole.record(value)
        seconds.append(hist)
    alone = percentile_interval(whole, 99.0)
    widened = percentile_interval(whole, 99.0, seconds)
    assert alone is not None and widened is not None
    assert widened.method == "order statistics and seconds"
    assert widened.high - widened.low > 2 * (alone.high - alone.low)


def test_batch_means_cover_the_mean_of_an_autocorrelated_series_better_than_seconds():
    """AR(1) seconds (phi 0.6): a t interval over single seconds undercovers; batch means stay near 95 %."""
    rng = random.Random(13)
    hits_batch = hits_naive = 0
    n = 2000
    for _ in range(n):
        x, series = 0.0, []
        for _ in range(100):
            x = 0.6 * x + rng.gauss(0, 1)
            series.append(100.0 + x)
        batches = batch_interval(series)
        naive = rounds_interval(series)
        assert batches is not None and naive is not None
        hits_batch += batches.low <= 100.0 <= batches.high
        hits_naive += naive.low <= 100.0 <= naive.high
    assert _coverage(hits_naive, n) < 0.80
    assert _coverage(hits_batch, n) > 0.88
    assert batch_interval([1.0, 2.0]) is None


def _change(estimate: float, low: float, high: float, n: int = 10) -> Change:
    spread = (high - low) / 2 / t_quantile(n - 1) / 100
    return Change(estimate, low, high, (n, n), True, spread, n - 1)


@pytest.mark.parametrize(
    ("estimate", "low", "high", "word"),
    [
        (-10.0, -14.0, -6.0, "regression"),  # worse with confidence, past the allowance
        (-7.0, -12.0, -2.0, "regression"),  # the interval reaches inside the allowance, but clears 0
        (-4.0, -8.0, -0.5, "inconclusive"),  # worse, but by less than the allowance: undecided
        (-1.0, -4.0, 2.0, "no change"),  # within the allowance
        (-3.0, -9.0, 3.0, "inconclusive"),  # straddles the allowance
        (+8.0, +6.0, +10.0, "improvement"),
    ],
)
def test_change_verdicts_against_an_allowance_of_5_percent(estimate, low, high, word):
    assert judge_change(_change(estimate, low, high), -5.0, higher_is_better=True).word == word
    # a latency's bad direction is up: the mirror image is the same verdict
    assert judge_change(_change(-estimate, -high, -low), 5.0, higher_is_better=False).word == word


def test_inconclusive_says_how_many_more_rounds_would_likely_decide():
    verdict = judge_change(_change(-3.0, -9.0, 3.0, n=5), -5.0, True)
    assert verdict.word == "inconclusive" and verdict.more_rounds is not None
    # within the allowance by 2 %, half width 6 %: about 5 * (6/2)^2 * (1.96/2.78)^2 = 22 rounds, 17 more
    assert 15 <= verdict.more_rounds <= 19 and "about" in verdict.why
    # past the allowance, half width 7 %: 0 must clear, 10 * (7/6)^2 * (1.96/2.26)^2 = 10.3 rounds, 1 more
    assert more_rounds(_change(-6.0, -13.0, 1.0), -5.0, True) == 1
    assert more_rounds(_change(-4.99, -30.0, 20.0), -5.0, True) is None  # on the allowance: no advice
    single = judge_change(Change(-20.0, None, None, (1, 1), False), -5.0, True)
    assert single.word == "inconclusive" and "noise unknown" in single.why


def test_an_unchanged_build_is_rarely_called_a_regression():
    """A/A on simulated rounds: the rule's false alarms stay under the 2.5 % its interval allows."""
    rng = random.Random(17)
    allowance = parse_allowances("ops_per_sec:-5%")[0]
    alarms, detected, n = 0, 0, 2000
    for _ in range(n):
        drift = [rng.gauss(0, 0.08) for _ in range(10)]
        a = [1e5 * math.exp(d + rng.gauss(0, 0.04)) for d in drift]
        same = [1e5 * math.exp(d + rng.gauss(0, 0.04)) for d in drift]
        slower = [0.9e5 * math.exp(d + rng.gauss(0, 0.04)) for d in drift]
        alarms += compare_metric("t", "ops_per_sec", a, same, allowance, paired=True).regression
        detected += compare_metric("t", "ops_per_sec", a, slower, allowance, paired=True).regression
    assert alarms / n <= 0.025
    assert detected / n >= 0.90

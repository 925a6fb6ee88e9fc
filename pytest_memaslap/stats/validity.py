"""Runs that check their own validity before anyone reads their numbers (Lancet, ATC 2019, in part).

- ``rate``: an open loop achieved its target within 10 % in every whole
  second of the measured phase (the seconds that missed are listed).
- ``arrivals``: the requests left as the schedule asked: the gaps between
  departures (the first 5,000 of the measured phase, one shard's) against the
  exponential distribution (Poisson), judged by their Kolmogorov-Smirnov
  distance (at most 0.1), with the Anderson-Darling statistic reported
  beside it; or, for even arrivals, 90 % of the gaps within half a mean gap
  of it. Why a distance and not the Anderson-Darling p-value: every real
  sender has a floor of a few µs between two writes, and 5,000 gaps are
  enough for Anderson-Darling to reject that floor alone (measured: 20.6
  against a 1 % critical value of 1.96 at 5k requests/s, whose gap quantiles
  from the median up are within 3 % of the exponential's); a sender that
  batches or stalls for milliseconds moves the distance far past 0.1.
- ``stationarity``: no trend over the run (a Mann-Kendall test, as Kendall's
  tau of the per-second values against time, at 1 %, on throughput and p99)
  and no stall (no whole second under half the median throughput). A server
  that warmed up, degraded or stopped mid-run fails it.
- ``independence``: whether successive latencies are independent: Spearman's
  rank correlation between each latency and the next reply's (lag 1), at
  1 %, over runs of 16 successive replies the hot path keeps across the
  whole phase (one shard's). Reported, not failed: under load, successive
  replies share a queue (and, pipelined, a read) and are rarely independent.
  When they are not, the percentile intervals are made on the effective
  number of samples, n / tau, with tau = 1 + 2 (rho_1 + rho_2 + ...) the
  integrated autocorrelation time, summed over the lags whose correlation
  is significant (up to 15; ``tau_truncated`` when lag 15 still is), so they
  widen with the dependence.
- ``percentiles``: each reported percentile's 95 % interval.

A check that cannot be made (a closed loop has no rate; a run of under 5
whole seconds no trend) is ``null``, with why. ``scipy.stats`` is imported
only when a check runs.
"""

from __future__ import annotations

import statistics
from typing import Any

RATE_TOLERANCE = 0.10
SIGNIFICANCE = 0.01
MIN_SECONDS = 5  # whole seconds a trend test needs
MIN_GAPS = 50  # departure gaps an arrival test needs
STALL_SHARE = 0.5  # a second under this share of the median throughput is a stall
UNIFORM_SPREAD = 0.5  # even arrivals: gaps within this share of the mean gap...
UNIFORM_KEPT = 0.9  # ... for at least this share of the gaps
CLOCK_RESOLUTION_S = 1e-9  # a gap of 0 (two requests in one write) counts as one clock tick
MAX_DISTANCE = 0.1  # the departures' gap CDF within this of the exponential's, everywhere
MIN_RUNS = 8  # runs of successive latencies an independence test needs
RUN_LENGTH = 16  # successive latencies in a run (the hot path's recorder.RUN_LENGTH)


def rate_check(ops: list[int], targets: list[float | None]) -> dict[str, Any] | None:
    """Whole seconds whose throughput missed the target by more than 10 % (None: no target, a closed loop)."""
    pairs = [(i, n, t) for i, (n, t) in enumerate(zip(ops, targets, strict=True)) if t]
    if not pairs:
        return None
    missed = [i for i, n, t in pairs if abs(n - t) > RATE_TOLERANCE * t]
    return {"passed": not missed, "seconds_missed": missed, "seconds": len(pairs), "tolerance": RATE_TOLERANCE}


def arrivals_check(departures_ns: list[int], arrivals: str) -> dict[str, Any] | None:
    """The departure gaps against the requested distribution (None: not an open loop, or too few)."""
    if arrivals not in ("poisson", "uniform") or len(departures_ns) < MIN_GAPS + 1:
        return None
    times = sorted(departures_ns)
    gaps = [(b - a) / 1e9 for a, b in zip(times, times[1:], strict=False)]
    mean = statistics.fmean(gaps)
    if arrivals == "uniform":
        kept = sum(1 for gap in gaps if abs(gap - mean) <= UNIFORM_SPREAD * mean) / len(gaps)
        return {
            "passed": kept >= UNIFORM_KEPT,
            "test": "spread",
            "within_half_a_gap": round(kept, 4),
            "gaps": len(gaps),
        }
    from scipy import stats

    batched = sum(1 for gap in gaps if gap <= 0) / len(gaps)  # (requests that left in one write with another)
    if mean <= 0:  # (every request of the sample left in one write: as far from Poisson as can be)
        return {"passed": False, "test": "Kolmogorov-Smirnov distance to the exponential", "distance": 1.0,
                "max_distance": MAX_DISTANCE, "anderson_darling": None, "gaps": len(gaps), "mean_gap_us": 0.0,
                "batched_share": round(batched, 4)}  # fmt: skip
    distance = float(stats.kstest(gaps, "expon", args=(0, mean)).statistic)
    anderson = _anderson([max(gap, CLOCK_RESOLUTION_S) for gap in gaps])
    return {
        "passed": distance <= MAX_DISTANCE,
        "test": "Kolmogorov-Smirnov distance to the exponential",
        "distance": round(distance, 4),
        "max_distance": MAX_DISTANCE,
        "anderson_darling": round(float(anderson.statistic), 4),
        "gaps": len(gaps),
        "mean_gap_us": round(mean * 1e6, 3),
        "batched_share": round(batched, 4),
    }


def independence_check(runs_ns: list[int], run_length: int = RUN_LENGTH) -> dict[str, Any] | None:
    """Spearman's rank correlation of successive latencies, at lag 1 and on (None: too few runs).

    ``effective_share`` is the share of the samples that count as independent
    ones when the percentile intervals are made: 1 / tau, where tau = 1 + 2 x
    the sum of the correlations at lags 1, 2, ... while each is significant
    and positive; 1 when lag 1 is not.
    """
    runs = [runs_ns[i : i + run_length] for i in range(0, len(runs_ns) - run_length + 1, run_length)]
    if len(runs) < MIN_RUNS or len(set(runs_ns)) < 2:
        return None  # (too few, or a constant, which has no rank correlation)
    from scipy import stats

    correlations: list[tuple[float, float]] = []
    for lag in range(1, run_length):
        earlier = [value for run in runs for value in run[:-lag]]
        later = [value for run in runs for value in run[lag:]]
        rho, p_value = stats.spearmanr(earlier, later)
        correlations.append((float(rho), float(p_value)))
    rho_1, p_1 = correlations[0]
    if not (rho_1 == rho_1):  # (NaN: one side constant)
        return None
    dependent = p_1 < SIGNIFICANCE and rho_1 > 0
    tau, counted = 1.0, 0
    if dependent:
        for rho, p_value in correlations:
            if not (p_value < SIGNIFICANCE and rho > 0):
                break
            tau += 2 * rho
            counted += 1
    return {
        "test": "Spearman rank correlation at lag 1",
        "rho": round(rho_1, 4),
        "p_value": _rounded(p_1),
        "samples": len(runs) * run_length,
        "runs": len(runs),
        "independent": not dependent,
        "rho_by_lag": [round(rho, 3) for rho, _ in correlations],
        "tau": round(tau, 3),
        "tau_truncated": counted == run_length - 1,
        "effective_share": round(1.0 / tau, 4),
    }


def stationarity_check(ops: list[int], p99_us: list[float]) -> dict[str, Any]:
    """A trend in throughput or p99 (Mann-Kendall), or a stall: either fails."""
    if len(ops) < MIN_SECONDS:
        return {"passed": None, "why": f"{len(ops)} whole seconds; a trend test needs {MIN_SECONDS}"}
    from scipy import stats

    seconds = list(range(len(ops)))
    trends = {}
    for name, series in (("ops", ops), ("p99_us", p99_us)):
        tau, p_value = stats.kendalltau(seconds, series)
        trending = bool(p_value == p_value and p_value < SIGNIFICANCE)
        trends[name] = {
            "tau": round(float(tau), 4) if tau == tau else None,
            "p_value": _rounded(p_value),
            "trend": trending,
        }
    median = statistics.median(ops)
    stalls = [i for i, n in enumerate(ops) if n < STALL_SHARE * median]
    passed = not stalls and not any(t["trend"] for t in trends.values())
    return {"passed": passed, "trend": trends, "stalled_seconds": stalls}


def validity(
    ops: list[int],
    targets: list[float | None],
    p99_us: list[float],
    departures_ns: list[int],
    arrivals: str,
    percentile_intervals: dict[str, Any],
    independence: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Every check of a run (``passed`` is False when one that could be made failed; ``independence`` is
    reported, and already in the intervals)."""
    checks = {
        "rate": rate_check(ops, targets),
        "arrivals": arrivals_check(departures_ns, arrivals) if any(targets) else None,
        "stationarity": stationarity_check(ops, p99_us),
    }
    failed = [name for name, check in checks.items() if check is not None and check.get("passed") is False]
    return {
        **checks,
        "independence": independence,
        "percentiles": percentile_intervals,
        "passed": not failed,
        "failed": failed,
    }


def failure_text(section: dict[str, Any]) -> str:
    """One line on what failed and what it means for the numbers."""
    parts = []
    rate = section.get("rate")
    if rate and rate["passed"] is False:
        missed = rate["seconds_missed"]
        shown = ", ".join(map(str, missed[:10])) + (" ..." if len(missed) > 10 else "")
        parts.append(
            f"the rate missed its target by over 10 % in {len(missed)} of {rate['seconds']} s (seconds {shown})"
        )
    arrivals = section.get("arrivals")
    if arrivals and arrivals["passed"] is False:
        parts.append(f"requests did not leave as the schedule asked ({arrivals['test']})")
    stationarity = section.get("stationarity")
    if stationarity and stationarity["passed"] is False:
        trending = [name for name, t in stationarity["trend"].items() if t["trend"]]
        stalls = stationarity["stalled_seconds"]
        what = []
        if trending:
            what.append(f"a trend in {' and '.join(trending)}")
        if stalls:
            what.append(f"stalled seconds {', '.join(map(str, stalls[:10]))}")
        parts.append(f"the run was not steady ({'; '.join(what)})")
    return "; ".join(parts)


def _anderson(gaps: list[float]) -> Any:
    """scipy's Anderson-Darling test for the exponential; ``method`` where scipy asks for it (1.17 and newer)."""
    from scipy import stats

    try:
        return stats.anderson(gaps, dist="expon", method="interpolate")
    except TypeError:  # (scipy before 1.17 has no method)
        return stats.anderson(gaps, dist="expon")


def _rounded(value: float) -> float | None:
    return round(float(value), 6) if value == value else None

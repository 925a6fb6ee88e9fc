"""Runs that check their own validity: each check on simulated data with known answers, then against ground truth.

Ground truth: a healthy open loop passes every check; a server stopped
(SIGSTOP) mid-run fails stationarity; a rate the tool cannot hold fails the
rate check; a sender whose event loop is held in 5 ms slices (a thread that
keeps the interpreter busy) fails the arrivals check.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time

import pytest

from pytest_memaslap import Target, Workload, run_shard
from pytest_memaslap.stats.result import SlapResult
from pytest_memaslap.stats.validity import arrivals_check, independence_check, rate_check, stationarity_check

SEED = 42


def _poisson_departures(rate: float, count: int, seed: int = SEED) -> list[int]:
    rng = random.Random(seed)
    now, times = 0.0, []
    for _ in range(count):
        now += rng.expovariate(rate)
        times.append(int(now * 1e9))
    return times


def test_the_rate_check_lists_the_seconds_that_missed_their_target_by_over_ten_percent():
    check = rate_check([1000, 950, 880, 1000], [1000.0, 1000.0, 1000.0, 1000.0])
    assert check == {"passed": False, "seconds_missed": [2], "seconds": 4, "tolerance": 0.1}
    assert rate_check([1000], [None]) is None  # (a closed loop has no target)


def test_poisson_departures_pass_and_batched_ones_fail_the_arrivals_check():
    good = arrivals_check(_poisson_departures(5000.0, 5000), "poisson")
    assert good is not None and good["passed"] and good["distance"] < 0.03
    # the same schedule, but sent in batches every 5 ms (a sender whose loop is held up)
    batched = [t - t % 5_000_000 for t in _poisson_departures(5000.0, 5000)]
    bad = arrivals_check(batched, "poisson")
    assert bad is not None and not bad["passed"] and bad["batched_share"] > 0.9
    assert arrivals_check([1, 2, 3], "poisson") is None  # (too few to test)


def test_departures_all_in_one_write_fail_the_arrivals_check_without_a_division_by_zero():
    check = arrivals_check([1_000_000] * 200, "poisson")
    assert check["passed"] is False and check["distance"] == 1.0 and check["batched_share"] == 1.0


def test_even_arrivals_are_checked_by_their_spread():
    even = [i * 200_000 for i in range(1000)]
    assert arrivals_check(even, "uniform")["passed"]  # type: ignore[index]
    assert not arrivals_check(_poisson_departures(5000.0, 1000), "uniform")["passed"]  # type: ignore[index]


def test_stationarity_fails_a_trend_or_a_stall_and_passes_noise():
    rng = random.Random(SEED)
    steady = [100_000 + rng.randint(-3000, 3000) for _ in range(20)]
    p99 = [500.0 + rng.uniform(-20, 20) for _ in range(20)]
    assert stationarity_check(steady, p99)["passed"]
    warming = [60_000 + 2_000 * i + rng.randint(-500, 500) for i in range(20)]
    assert stationarity_check(warming, p99)["trend"]["ops"]["trend"]
    stalled = steady[:10] + [1_000] + steady[11:]
    check = stationarity_check(stalled, p99)
    assert not check["passed"] and check["stalled_seconds"] == [10]
    assert stationarity_check(steady[:3], p99[:3])["passed"] is None  # (too short to tell)


def _ar1_runs(phi: float, runs: int, length: int = 16, seed: int = SEED) -> list[int]:
    """Runs of a first-order autoregressive series around 100 µs (phi = 0: independent), in ns."""
    rng = random.Random(seed)
    values: list[int] = []
    for _ in range(runs):
        x = rng.gauss(0, 1)
        for _ in range(length):
            values.append(int(100_000 + 10_000 * x))
            x = phi * x + rng.gauss(0, (1 - phi * phi) ** 0.5)
    return values


def test_the_independence_check_finds_correlated_latencies_and_their_effective_share():
    independent = independence_check(_ar1_runs(0.0, 300))
    assert independent["independent"] and independent["effective_share"] == 1.0 and abs(independent["rho"]) < 0.05
    ar = independence_check(_ar1_runs(0.6, 300))
    assert not ar["independent"] and 0.55 < ar["rho"] < 0.65
    # an AR(1) series' integrated autocorrelation time is (1 + phi) / (1 - phi) = 4
    assert 3.3 < ar["tau"] < 4.7 and not ar["tau_truncated"] and ar["effective_share"] == round(1 / ar["tau"], 4)
    batched = independence_check([v for x in _ar1_runs(0.0, 600, 2) for v in [x] * 8])  # (8 alike, as in one read)
    assert not batched["independent"] and 6 < batched["tau"] < 10  # (lags 1-7 within a batch; none after)
    assert independence_check(_ar1_runs(0.0, 5)) is None  # (too few runs)
    assert independence_check([100] * 16 * 20) is None  # (a constant)


def test_dependent_samples_widen_a_percentiles_interval():
    from pytest_memaslap.stats.histogram import Histogram
    from pytest_memaslap.stats.intervals import percentile_interval

    rng = random.Random(SEED)
    histogram = Histogram()
    for _ in range(20_000):
        histogram.record(int(rng.lognormvariate(11.5, 0.4)))
    alone = percentile_interval(histogram, 99.0)
    dependent = percentile_interval(histogram, 99.0, effective_share=0.1)
    assert alone is not None and dependent is not None and alone.estimate == dependent.estimate
    assert dependent.low <= alone.low and dependent.high >= alone.high
    assert dependent.high - dependent.low > 2 * (alone.high - alone.low)  # (about sqrt(10) times)
    assert dependent.method == "order statistics of dependent samples"
    assert percentile_interval(histogram, 99.99, effective_share=0.01) is None  # (200 samples: no p99.99)


def test_a_pipelined_closed_loop_has_dependent_latencies_and_says_so(own_server):
    """16 connections x 8 in flight: replies read together have nearly the same latency; lag 1 correlates."""
    result = _run(own_server, duration="2s", connections=8, window=8, rate=None, arrivals="poisson")
    check = result.validity()["independence"]
    assert check is not None and not check["independent"] and check["rho"] > 0.3, check
    assert check["tau"] > 1 and check["runs"] >= 8 and result.effective_share() < 1


def _run(server, **args) -> SlapResult:
    workload = Workload.from_args({"connections": 4, "keys": 2000, "value_size": 100, "arrivals": "poisson", **args})
    return SlapResult(workload, run_shard(workload, Target(server.host, server.port), f"val{time.time_ns()}:"))


def test_a_healthy_open_loop_passes_every_check(own_server):
    """(A busy test machine can starve the sender, and then the arrivals check rightly fails the run: up to
    three runs, the first that the machine lets through must pass everything. The false-alarm rate on a quiet
    machine is measured by benchmarks/validity_false_alarms.py.)"""
    for _ in range(3):
        validity = _run(own_server, rate="3k", duration="5s").validity()
        if validity["passed"]:
            break
    assert validity["passed"], validity
    assert validity["rate"]["passed"] and validity["arrivals"]["passed"] and validity["stationarity"]["passed"]
    assert set(validity["percentiles"]) == {"p50", "p99", "p999"}


def test_a_server_stopped_mid_run_fails_stationarity(own_server):
    """The server is SIGSTOPped from second 2 to second 3.5 of a closed-loop run: a stall the check names."""
    pid = own_server.process.pid

    def stop_for_a_while() -> None:
        time.sleep(2.0)
        os.kill(pid, signal.SIGSTOP)
        time.sleep(1.5)
        os.kill(pid, signal.SIGCONT)

    thread = threading.Thread(target=stop_for_a_while)
    thread.start()
    try:
        result = _run(own_server, duration="6s", timeout="10s")
    finally:
        thread.join()
        os.kill(pid, signal.SIGCONT)
    check = result.validity()["stationarity"]
    assert check["passed"] is False and check["stalled_seconds"], check


def test_a_rate_the_tool_cannot_hold_fails_the_rate_check(own_server):
    validity = _run(own_server, rate="2M", duration="1s", connections=2).validity()
    assert validity["rate"]["passed"] is False and validity["rate"]["seconds_missed"] == [0]
    assert "rate" in validity["failed"]


def test_a_sender_held_in_slices_fails_the_arrivals_check(own_server):
    """A thread that keeps the interpreter busy holds the event loop for its 5 ms switch interval at a time:
    the requests due meanwhile leave together, in bursts the check sees."""
    stop = threading.Event()

    def hog() -> None:
        while not stop.is_set():
            sum(range(1000))

    thread = threading.Thread(target=hog, daemon=True)
    thread.start()
    try:
        validity = _run(own_server, rate="5k", duration="1.5s").validity()
    finally:
        stop.set()
        thread.join()
    assert validity["arrivals"]["passed"] is False, validity["arrivals"]


def test_validity_fail_fails_the_test_and_report_only_notes_it(pytester, own_server):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.slap(rate="2M", duration="1s", connections=2, keys=1000, value_size=100)
        def test_too_fast(slap):
            slap()
        """
    )
    args = ("-p", "no:cacheprovider", f"--memcached={own_server.address}", "--slap-json=r.json")
    reported = pytester.runpytest(*args)
    reported.assert_outcomes(passed=1)
    reported.stdout.fnmatch_lines(["note: *test_too_fast: not a valid run: the rate missed*reported, not judged*"])
    (test,) = json.loads((pytester.path / "r.json").read_text())["tests"].values()
    assert test["validity"]["passed"] is False and "rate" in test["validity"]["failed"]
    judged = pytester.runpytest(*args, "--slap-validity=fail")
    judged.assert_outcomes(failed=1)
    judged.stdout.fnmatch_lines(["*slap run failed its validity checks (--slap-validity=fail): the rate missed*"])
    bad = pytester.runpytest("-p", "no:cacheprovider", "--slap-validity=maybe")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR

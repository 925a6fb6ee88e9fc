"""Histograms and results are exact to merge and accurate to read."""

from __future__ import annotations

import random
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_memaslap.engine.hot.recorder import PhaseRecorder, new_counters, new_latencies, new_runs, new_second
from pytest_memaslap.stats.histogram import BUCKET_COUNT, Histogram, bucket_bounds, bucket_index, bucket_value
from pytest_memaslap.stats.results import Second, ShardResult, merge_results

latencies = st.lists(st.integers(min_value=0, max_value=10**11), max_size=300)


@given(st.integers(min_value=0, max_value=2**47))
def test_bucket_contains_value_and_midpoint_is_within_half_a_percent(value):
    index = bucket_index(value)
    low, high = bucket_bounds(index)
    assert low <= value <= high
    if value:
        assert abs(bucket_value(index) - value) / value <= 0.004


def test_buckets_are_contiguous():
    previous_high = -1
    for index in range(2000):
        low, high = bucket_bounds(index)
        assert low == previous_high + 1
        previous_high = high


@settings(max_examples=60)
@given(latencies, latencies)
def test_merging_two_histograms_equals_one_histogram_of_both(a, b):
    left, right, both = Histogram(), Histogram(), Histogram()
    for v in a:
        left.record(v)
        both.record(v)
    for v in b:
        right.record(v)
        both.record(v)
    left.merge(right)
    assert left.counts == both.counts
    for q in (50, 90, 99, 99.9):
        assert left.percentile(q) == both.percentile(q)


def test_percentiles_match_the_samples_within_one_percent():
    rng = random.Random(7)
    samples = sorted(int(rng.lognormvariate(12, 1)) for _ in range(20_000))
    hist = Histogram()
    for v in samples:
        hist.record(v)
    for q in (50, 90, 99, 99.9):
        exact = samples[int(len(samples) * q / 100) - 1]
        assert abs(hist.percentile(q) - exact) / exact < 0.01
    assert abs(hist.max() - samples[-1]) / samples[-1] < 0.01


def _samples(seed: int) -> list[tuple[int, int, int, int]]:
    """(time ns, command, outcome, latency ns) of one shard's completions, in time order."""
    rng = random.Random(seed)
    now, out = 0, []
    for _ in range(3000):
        now += rng.randrange(1_000_000)
        out.append((now, rng.randrange(2), rng.randrange(3), rng.randrange(10**7)))
    return out


def _record(samples: list[tuple[int, int, int, int]]) -> ShardResult:
    recorder = PhaseRecorder(("get", "set"), 0)
    for now, cmd, outcome, latency in samples:
        recorder.tick(now)
        recorder.record(cmd, outcome, latency, 30, 40)
    result = ShardResult()
    result.phases["measured"] = recorder.finish(samples[-1][0])
    return result


def _shard(seed: int) -> ShardResult:
    return _record(_samples(seed))


def test_merged_shard_results_equal_one_recording_of_all_samples():
    """Merging two shards gives what one recorder fed both sample streams records: counts, histograms, timeline."""
    a_samples, b_samples = _samples(1), _samples(2)
    a, b = _record(a_samples), _record(b_samples)
    merged = merge_results([a, b])
    both = _record(sorted(a_samples + b_samples))
    assert merged.shards == 2
    for name in ("get", "set"):
        got, expected = merged.measured.commands[name], both.measured.commands[name]
        assert (got.ops, got.hits, got.misses, got.errors, got.bytes_sent, got.bytes_received) == (
            expected.ops,
            expected.hits,
            expected.misses,
            expected.errors,
            expected.bytes_sent,
            expected.bytes_received,
        )
        assert got.latency.counts == expected.latency.counts
    merged_timeline = [(s.ops, s.errors, s.latency) for s in merged.measured.timeline]
    # (the shorter shard's timeline ends first; the single recorder runs to the later end)
    assert merged_timeline == [(s.ops, s.errors, s.latency) for s in both.measured.timeline][: len(merged_timeline)]
    assert sum(s.ops for s in merged.measured.timeline) == merged.measured.ops == 6000
    assert merged.requests_sent == a.requests_sent + b.requests_sent
    # the inputs are untouched
    assert a.measured.ops == b.measured.ops == 3000


def test_a_second_closes_into_the_timeline_exactly_and_is_zeroed():
    """The close finds every occupied bucket: where the last second's were, and after the latencies moved."""
    recorder = PhaseRecorder(("get", "set"), 0)
    rng = random.Random(3)
    expected = []
    for second in range(6):
        scale = 10**4 if second < 3 else 10**8  # the latencies jump by 13 octaves half way
        latency: dict[int, int] = {}
        for _ in range(2000):
            value = rng.randrange(scale, 3 * scale)
            recorder.record(rng.randrange(2), 0, value, 1, 1)
            latency[bucket_index(value)] = latency.get(bucket_index(value), 0) + 1
        recorder.record(0, 2, 10**11, 1, 0)  # one error far out in the tail
        latency[bucket_index(10**11)] = latency.get(bucket_index(10**11), 0) + 1
        expected.append((2001, 1, latency))
        recorder.tick((second + 1) * 10**9)
        assert not any(recorder.second)
    assert [(s.ops, s.errors, s.latency) for s in recorder.timeline] == expected
    phase = recorder.finish(6 * 10**9)
    assert sum(c.ops for c in phase.commands.values()) == 6 * 2001 and len(phase.timeline) == 6


def test_the_connections_inlined_bucket_maths_is_bucket_index(monkeypatch, hot_path):
    """Both hot paths copy ``bucket_index`` inline; every latency must land where the one home says."""
    from pytest_memaslap.engine.hot import connection, core
    from pytest_memaslap.engine.hot.recorder import MAX_NS, MIN_NS, RECEIVED, SENT
    from pytest_memaslap.protocol import ascii

    latencies = [0, 1, 7, 255, 256, 257, 511, 512, 1000, 12_345, 999_999, 2**20 + 3, 10**9, 2**47, 2**60]
    latencies += [random.Random(9).randrange(1, 10**10) for _ in range(300)]
    if hot_path == "compiled":  # (its clock is C's: the maths is checked on its own, and the clock is the same)
        from pytest_memaslap.engine.hot import _core

        assert [_core.bucket_of(v) for v in latencies] == [bucket_index(v) for v in latencies]
        before = time.perf_counter_ns()
        assert before <= _core.clock_ns() <= time.perf_counter_ns()
        return
    now = 2**62
    monkeypatch.setattr(core, "perf_counter_ns", lambda: now)
    counters, histogram, second = new_counters(), new_latencies(), new_second()

    class Events:
        def connection_failed(self, connection, reason):  # type: ignore[no-untyped-def]
            raise AssertionError(reason)

        connection_lost = connection_failed

    class Transport:
        def write(self, data: bytes) -> None:
            raise AssertionError("a stopped connection sends nothing")

    conn = connection.connection_class()(Events(), 0)
    conn.connection_made(Transport())  # type: ignore[arg-type]
    conn.enter_phase(((ascii.PARSERS["set"], counters, histogram, second, new_runs()),))
    conn.stop()
    for latency in latencies:
        conn.track(conn.slots[0], now - latency, 10)
    conn.data_received(b"STORED\r\n" * len(latencies))
    expected = [0] * BUCKET_COUNT
    for latency in latencies:
        expected[bucket_index(latency)] += 1
    assert histogram.tolist() == expected and second.tolist() == expected
    assert counters[SENT] == 10 * len(latencies) and counters[RECEIVED] == 8 * len(latencies)
    if latencies:
        assert (counters[MIN_NS], counters[MAX_NS]) == (min(latencies), max(latencies))  # exact, not buckets


@pytest.mark.parametrize(
    ("cpu_pct", "late_ns", "achieved", "hiccup_ns", "reason"),
    [
        (40.0, 50_000, 2000, 30_000, None),
        (95.0, 50_000, 2000, 30_000, "its CPU at 95 %"),
        (40.0, 2_000_000, 2000, 30_000, "its event loop late by 2.0 ms at p99"),
        (40.0, 50_000, 1900, 30_000, "1,900 of the 2,000 requests/s asked for"),
        (40.0, 50_000, 2000, 1_500_000, "its machine 1.5 ms late at p99 to wake a sleeping thread"),
    ],
)
def test_the_load_generator_says_when_it_may_be_the_bottleneck(cpu_pct, late_ns, achieved, hiccup_ns, reason):
    from pytest_memaslap.model.workload import Workload
    from pytest_memaslap.stats.result import SlapResult
    from pytest_memaslap.stats.results import CommandStats

    raw = ShardResult()
    stats = CommandStats(ops=achieved)
    stats.latency.record(100_000, achieved)
    raw.measured.commands["get"] = stats
    raw.measured.elapsed_s = 1.0
    raw.cpu_pct = cpu_pct
    for i in range(100):
        raw.loop_lag.record(late_ns if i >= 95 else 20_000)  # the slowest 5 %
        raw.hiccups.record(hiccup_ns if i >= 95 else 20_000)
    closed = SlapResult(Workload.from_args({"commands": {"get": 1.0}}), raw, "")
    opened = SlapResult(Workload.from_args({"rate": "2k", "commands": {"get": 1.0}}), raw, "")
    if reason and "CPU" in reason:  # (an open loop's pacer keeps its CPU busy on purpose)
        assert closed.limited_by_load_generator() == reason and opened.limited_by_load_generator() is None
    elif reason and "requests/s" in reason:  # (a closed loop asks for no rate)
        assert opened.limited_by_load_generator() == reason and closed.limited_by_load_generator() is None
    else:
        assert closed.limited_by_load_generator() == opened.limited_by_load_generator() == reason
    assert opened.engine()["limited_by_load_generator"] == opened.limited_by_load_generator()


@settings(max_examples=150, deadline=None)
@given(st.lists(latencies, min_size=1, max_size=6), st.sampled_from([1.0, 50.0, 90.0, 99.0, 99.9, 100.0]))
def test_seconds_merged_in_place_equal_their_dense_sum_and_read_the_same_percentile(runs, q):
    """The live progress adds seconds with C-level slices; the result must be the dense histograms' sum, exactly."""
    dense = Histogram()
    total = Second()
    for run in runs:
        hist = Histogram()
        for value in run:
            hist.record(value)
        dense.merge(hist)
        total.merge(Second.of(len(run), 1, hist.to_sparse()))
    assert total.latency == dense.to_sparse()
    assert total.ops == dense.total and total.errors == len(runs)
    assert total.percentile(q) == dense.percentile(q)
    if total.counts:
        assert total.counts[0] and total.counts[-1]  # (trimmed: occupied at both ends)


def test_no_reported_percentile_lies_beyond_the_exact_min_and_max():
    """A bucket's midpoint can exceed the largest sample in it (p99 349.183 > max 349.029 µs, seen in a short run)."""
    from pytest_memaslap.stats.result import CommandResult
    from pytest_memaslap.stats.results import CommandStats

    value = 349_029
    assert bucket_value(bucket_index(value)) > value  # (the midpoint of its bucket is above it)
    stats = CommandStats(ops=3, min_ns=value, max_ns=value)
    stats.latency.record(value, 3)
    result = CommandResult.from_stats("get", stats, 1.0)
    low, high = result.latency_us["min"], result.latency_us["max"]
    assert all(low <= result.latency_us[k] <= high for k in ("p50", "p90", "p99", "p999"))
    assert all(low <= us <= high for _, us in result.spectrum_us)
    assert low <= result.percentile(99.99) <= high


def test_asked_percentiles_are_keyed_by_their_number():
    """``--slap-percentiles=50,75,99.9,99.99``: ``p75``, ``p99.9``, ``p99.99`` beside the fixed keys (``p999`` too)."""
    from pytest_memaslap.stats.result import CommandResult
    from pytest_memaslap.stats.results import CommandStats

    stats = CommandStats(ops=1000)
    for i in range(1000):
        stats.latency.record(1000 + i)
    keys = CommandResult.from_stats("get", stats, 1.0).latency_with((50.0, 75.0, 99.9, 99.99))
    assert {"p50", "p75", "p99.9", "p99.99", "p999"} <= set(keys) and keys["p99.9"] == keys["p999"]


def test_a_single_long_stall_of_the_load_generator_is_flagged_with_its_length():
    """A 3 s stop of the load process shows in max loop lag, not in p99: it is named all the same."""
    from pytest_memaslap.model.workload import Workload
    from pytest_memaslap.stats.result import SlapResult
    from pytest_memaslap.stats.results import CommandStats

    raw = ShardResult()
    stats = CommandStats(ops=1000)
    stats.latency.record(100_000, 1000)
    raw.measured.commands["get"] = stats
    raw.measured.elapsed_s = 10.0
    for _ in range(1000):
        raw.loop_lag.record(20_000)
    raw.loop_lag.record(3_000_000_000)
    result = SlapResult(Workload.from_args({"commands": {"get": 1.0}}), raw, "")
    assert result.limited_by_load_generator() == "its event loop stalled once for 2,995 ms"  # (a bucket of 0.4 %)


def test_runs_of_successive_latencies_are_kept_from_every_strideth_reply_and_thinned_in_halves():
    from pytest_memaslap.engine.hot.recorder import (
        COUNTDOWN,
        FILL,
        RUN_LENGTH,
        RUNS_KEPT,
        STRIDE,
        keep_in_run,
        kept_runs,
        new_runs,
        thin_runs,
    )  # fmt: skip

    runs = new_runs()
    for latency in range(1, 2 * RUN_LENGTH + 1):  # (stride 1: every reply, in runs of 16)
        keep_in_run(runs, latency)
    assert kept_runs(runs) == list(range(1, 2 * RUN_LENGTH + 1))
    thin_runs(runs)  # (far from half full: nothing moves)
    assert runs[FILL] == 2 * RUN_LENGTH and runs[STRIDE] == 1
    latency = 2 * RUN_LENGTH
    while runs[FILL] <= RUN_LENGTH * RUNS_KEPT // 2:
        latency += 1
        keep_in_run(runs, latency)
    for _ in range(5):  # (a run half kept when the close comes: it stays, and goes on)
        latency += 1
        keep_in_run(runs, latency)
    whole = runs[FILL] // RUN_LENGTH
    before = kept_runs(runs)
    thin_runs(runs)
    after = kept_runs(runs)
    assert runs[STRIDE] == 2 + RUN_LENGTH and runs[COUNTDOWN] <= 0  # (mid-run: the run goes on)
    assert after == [v for i in range(0, whole, 2) for v in before[i * RUN_LENGTH : (i + 1) * RUN_LENGTH]]
    assert runs[FILL] == len(after) + 5 + 1  # (the partial run's values, kept after the whole ones)
    for _ in range(RUN_LENGTH - 6):  # the partial run ends, then the stride's replies are skipped
        latency += 1
        keep_in_run(runs, latency)
    assert kept_runs(runs)[-RUN_LENGTH:] == list(range(latency - RUN_LENGTH + 1, latency + 1))
    fill = runs[FILL]
    for _ in range(runs[STRIDE] - 1):
        keep_in_run(runs, 0)
    assert runs[FILL] == fill  # (skipped)
    keep_in_run(runs, 7)
    assert runs[FILL] == fill + 1 and kept_runs(runs)[-RUN_LENGTH:][-1] != 7  # (a new run begins: not whole yet)

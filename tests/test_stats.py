"""Histograms and results are exact to merge and accurate to read."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_memaslap.stats import (
    CommandStats,
    Histogram,
    PhaseRecorder,
    ShardResult,
    bucket_bounds,
    bucket_index,
    bucket_value,
    merge_results,
)

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


def _shard(seed: int) -> ShardResult:
    rng = random.Random(seed)
    recorder = PhaseRecorder(("get", "set"), 0)
    now = 0
    for _ in range(3000):
        now += rng.randrange(1_000_000)
        recorder.tick(now)
        recorder.record(rng.randrange(2), rng.randrange(3), rng.randrange(10**7), 30, 40)
    result = ShardResult()
    result.phases["measured"] = recorder.finish(now)
    return result


def test_merged_shard_results_equal_one_recording_of_all_samples():
    a, b = _shard(1), _shard(2)
    merged = merge_results([a, b])
    assert merged.shards == 2
    for name in ("get", "set"):
        expected = CommandStats()
        expected.merge(a.measured.commands[name])
        expected.merge(b.measured.commands[name])
        got = merged.measured.commands[name]
        assert (got.ops, got.hits, got.misses, got.errors) == (
            expected.ops,
            expected.hits,
            expected.misses,
            expected.errors,
        )
        assert got.latency.counts == expected.latency.counts
    assert merged.requests_sent == a.requests_sent + b.requests_sent
    assert sum(s.ops for s in merged.measured.timeline) == merged.measured.ops
    # the inputs are untouched
    assert a.measured.ops + b.measured.ops == merged.measured.ops


def test_shard_result_survives_a_json_round_trip():
    result = _shard(3)
    again = ShardResult.from_dict(result.to_dict())
    assert again.to_dict() == result.to_dict()

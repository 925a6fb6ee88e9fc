"""Workload arguments: accepted shapes, and a clear error for each bad one."""

from __future__ import annotations

import pytest

from pytest_memaslap.model.keyspace import build_keys, key_slice, min_key_size
from pytest_memaslap.model.workload import Workload, WorkloadError, parse_duration


def test_defaults_are_memaslaps_shape():
    w = Workload()
    assert dict(w.commands) == {"get": 0.9, "set": 0.1}
    assert w.key_size == ((64, 64, 1.0),) and w.value_size == ((1024, 1024, 1.0),)
    assert w.window == 1


@pytest.mark.parametrize(("text", "seconds"), [(10, 10.0), ("10s", 10.0), ("500ms", 0.5), ("2m", 120.0), ("1.5", 1.5)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_sizes_in_all_three_shapes():
    w = Workload.from_args({"key_size": 32, "value_size": (64, 1024)})
    assert w.key_size == ((32, 32, 1.0),)
    assert w.value_size == ((64, 1024, 1.0),)
    w = Workload.from_args({"value_size": [(1, 100, 0.5), (1000, 2000, 0.5)]})
    assert w.max_value_size() == 2000


def test_counts_take_suffixes():
    assert Workload.from_args({"keys": "50k", "ops": "1M"}).keys == 50_000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"dration": 1}, "unknown slap argument 'dration'; allowed: duration"),
        ({"duration": "ten"}, "duration='ten': expected a duration"),
        ({"duration": 0}, "duration=0.0: must be longer than 0 s"),
        ({"connections": 0}, "connections=0: must be at least 1"),
        ({"connections": "many"}, "connections='many': expected a whole number"),
        ({"window": -1}, "window=-1: must be at least 1"),
        ({"keys": 2.5}, "keys=2.5: expected a whole number"),
        ({"key_size": 0}, "sizes must satisfy 1 <= min <= max"),
        ({"key_size": 300}, "memcached keys are at most 250 bytes"),
        ({"value_size": (100, 10)}, "sizes must satisfy 1 <= min <= max; got (100, 10)"),
        ({"value_size": [(1, 2, 0.5)]}, "proportions must sum to 1; they sum to 0.5"),
        ({"value_size": "big"}, "value_size='big': expected a whole number"),
        ({"commands": {"get": 0.5}}, "proportions must sum to 1; they sum to 0.5"),
        ({"commands": {"getz": 1.0}}, "unknown command 'getz'; allowed: get, set, delete, add"),
        ({"commands": ["get"]}, "commands: expected a mapping of command to proportion"),
        ({"key_pattern": "zipfy"}, "key_pattern='zipfy': allowed: uniform, sequential"),
        ({"preload": "yes"}, "preload='yes': expected True or False"),
        ({"protocol": "resp"}, "protocol='resp': allowed: ascii"),
        ({"seed": -3}, "seed=-3: expected a non-negative integer"),
        ({"duration": None}, "give a duration"),
    ],
)
def test_bad_arguments_name_the_argument_and_what_is_allowed(args, message):
    with pytest.raises(WorkloadError) as excinfo:
        Workload.from_args(args)
    assert message in str(excinfo.value)


def test_workload_is_immutable_and_serialisable():
    w = Workload.from_args({"commands": {"get": 0.5, "set": 0.25, "delete": 0.25}})
    with pytest.raises(AttributeError):
        w.keys = 3  # type: ignore[misc]
    assert w.to_dict()["commands"] == {"get": 0.5, "set": 0.25, "delete": 0.25}


def test_key_slices_are_disjoint_and_cover_the_keyspace():
    slices = [key_slice(1003, i, 4) for i in range(4)]
    covered = [k for s in slices for k in s]
    assert covered == list(range(1003))


def test_keys_have_the_requested_sizes_and_are_distinct():
    import random

    keys = build_keys("slx:", range(5000), ((10, 40, 1.0),), random.Random(1))
    assert len(set(keys)) == 5000
    assert all(10 <= len(k) <= 40 for k in keys)
    assert all(b" " not in k for k in keys)


def test_keys_too_short_for_the_keyspace_are_refused():
    import random

    needed = min_key_size("slx:", 100_000)
    with pytest.raises(WorkloadError, match=f"use key_size of at least {needed}"):
        build_keys("slx:", range(100_000), ((5, 5, 1.0),), random.Random(1))


@pytest.mark.parametrize(
    ("given", "normalised"),
    [("uniform", "uniform"), ("zipf", "zipf:0.99"), ("zipf:0.5", "zipf:0.5"), ("gaussian", "gaussian:0.166667")],
)
def test_key_patterns(given, normalised):
    assert Workload.from_args({"key_pattern": given}).key_pattern == normalised


@pytest.mark.parametrize("bad", ["zipf:1.5", "zipf:0", "zipf:x", "gaussian:-1", "hot", "uniform:3", 7])
def test_bad_key_patterns_say_what_is_allowed(bad):
    with pytest.raises(WorkloadError, match="allowed: uniform, sequential, zipf:THETA with 0 < THETA < 1"):
        Workload.from_args({"key_pattern": bad})


def test_zipf_draws_follow_the_zipf_law():
    import random
    from collections import Counter

    from pytest_memaslap.model.keyspace import Zipfian

    keys, theta, draws = 1000, 0.99, 200_000
    chooser = Zipfian(keys, theta, random.Random(5).random)
    counts = Counter(chooser() for _ in range(draws))
    assert min(counts) >= 0 and max(counts) < keys
    norm = sum(1 / r**theta for r in range(1, keys + 1))
    for rank in (0, 1, 2, 9, 99, 500):
        expected = draws / ((rank + 1) ** theta) / norm
        assert abs(counts[rank] - expected) < 5 * expected**0.5, (rank, counts[rank], expected)  # 5 sigma
    hot = sum(counts[r] for r in range(10)) / draws  # the 1 % hottest keys
    assert abs(hot - sum(1 / (r + 1) ** theta for r in range(10)) / norm) < 0.02


def test_gaussian_draws_centre_on_the_keyspace():
    import random
    import statistics

    from pytest_memaslap.model.keyspace import Gaussian

    chooser = Gaussian(60_000, 1 / 6, random.Random(5).gauss)
    sample = [chooser() for _ in range(50_000)]
    assert abs(statistics.mean(sample) - 30_000) < 300
    assert abs(statistics.stdev(sample) - 10_000) < 300
    assert min(sample) >= 0 and max(sample) < 60_000


def test_a_keyspace_or_connection_count_too_small_for_the_shards_is_refused():
    from pytest_memaslap.engine import ShardPlan
    from pytest_memaslap.plugin.fixture import check_shards

    with pytest.raises(WorkloadError, match="keys=3: a keyspace too small for 4 shards; use at least 4 keys"):
        check_shards(Workload.from_args({"keys": 3, "connections": 8}), ShardPlan(0, 4))
    with pytest.raises(WorkloadError, match="connections=2: fewer than the 4 shards"):
        check_shards(Workload.from_args({"keys": 100, "connections": 2}), ShardPlan(0, 4))
    check_shards(Workload.from_args({"keys": 4, "connections": 4}), ShardPlan(0, 4))


def test_verify_with_append_or_prepend_is_refused():
    """They grow values by bytes verify cannot expect: 1,096 false corruptions in a 1 s run before."""
    from pytest_memaslap.model.workload import Workload, WorkloadError

    with pytest.raises(WorkloadError, match="verify: checks a get's value .* append, prepend change values"):
        Workload.from_args({"commands": {"get": 0.8, "append": 0.1, "prepend": 0.1}, "verify": 0.1})
    assert Workload.from_args({"commands": {"get": 0.8, "append": 0.2}}).verify == 0


def test_poll_interval_is_a_pause_of_at_most_a_millisecond():
    assert Workload.from_args({"poll_interval": "50us"}).poll_interval == pytest.approx(5e-5)
    assert Workload.from_args({}).poll_interval == 0.0
    for bad in ("2ms", -1, "soon"):
        with pytest.raises(WorkloadError, match="poll_interval"):
            Workload.from_args({"poll_interval": bad})

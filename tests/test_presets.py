"""Published workloads: the sizes and gaps a preset draws fit the published distributions (scipy's, not ours).

Each fit is a chi-square (or Kolmogorov-Smirnov) test on draws with a fixed
seed, and each has a negative control: the same test rejects a distribution
off by a little, so a pass means the fit is close, not that the test is blind.
"""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest
from scipy import stats

from pytest_memaslap import Workload
from pytest_memaslap.model import presets
from pytest_memaslap.model.keyspace import Latest, ValueSource, key_sizes, sample_table
from pytest_memaslap.model.workload import WorkloadError

DRAWS = 20_000
SEED = 20261206


def _etc_value_probabilities(scale: float = presets.ETC_VALUE_TAIL[1]) -> tuple[list[float], list[float]]:
    """The published head (0 B folded into 1 B, as stored) and 20 equal-probability bins of the published tail."""
    published = presets.ETC_VALUE_HEAD
    head = [published[0] + published[1], *published[2:]]  # (sizes 1 to 14)
    location, _, shape = presets.ETC_VALUE_TAIL
    tail = stats.genpareto(c=shape, loc=location, scale=scale)
    return head, [tail.ppf(i / 20) for i in range(21)]


def _value_sizes(spec: presets.SizeSpec) -> list[int]:
    source = ValueSource(spec, random.Random(SEED))
    return [source.size_of(i) for i in range(DRAWS)]


def _value_fit(sizes: list[int], scale: float = presets.ETC_VALUE_TAIL[1]) -> float:
    """The p-value of a chi-square test of the sizes against ETC's published value distribution."""
    head, edges = _etc_value_probabilities(scale)
    tail_share = 1 - sum(head)
    observed = [sum(1 for s in sizes if s == size) for size in range(1, 15)]
    tail = [s for s in sizes if s >= 15]
    observed += list(np.histogram(tail, bins=np.array(edges[:-1] + [np.inf]) - 0.5)[0])
    expected = [p * len(sizes) for p in head] + [tail_share / 20 * len(sizes)] * 20
    keep = [i for i, e in enumerate(expected) if e >= 5]  # (chi-square wants 5 expected a cell)
    obs, exp = np.array([observed[i] for i in keep], float), np.array([expected[i] for i in keep])
    return float(stats.chisquare(obs, exp * obs.sum() / exp.sum()).pvalue)


def test_etc_value_sizes_fit_the_published_head_and_generalized_pareto_tail():
    sizes = _value_sizes(presets.etc_value_sizes())
    assert _value_fit(sizes) > 0.01
    assert _value_fit(sizes, scale=presets.ETC_VALUE_TAIL[1] * 1.1) < 1e-6  # (a scale 10 % off is rejected)


def _key_fit(sizes: list[int], location: float = presets.ETC_KEY_GEV[0]) -> float:
    _, scale, shape = presets.ETC_KEY_GEV
    gev = stats.genextreme(c=-shape, loc=location, scale=scale)  # (scipy's shape is the negative of ours)
    edges = [presets.MIN_KEY + 0.5] + [float(e) + 0.5 for e in range(24, 61, 3)] + [np.inf]
    cdf = [0.0] + [gev.cdf(e) for e in edges[:-1]] + [1.0]
    expected = np.diff(cdf) * len(sizes)
    observed = np.histogram(sizes, bins=[-np.inf, *edges])[0]
    return float(stats.chisquare(observed, expected).pvalue)


def test_etc_key_sizes_fit_the_published_gev():
    spec = presets.etc_key_sizes()
    sizes = key_sizes("s0000a_1:", range(DRAWS), spec, random.Random(SEED))
    assert _key_fit(sizes) > 0.01
    assert _key_fit(sizes, location=presets.ETC_KEY_GEV[0] + 1.0) < 1e-6  # (one byte off is rejected)


def test_etc_inter_arrival_times_fit_the_published_generalized_pareto_at_the_runs_rate():
    rng = random.Random(SEED)
    rate = 52_700.0  # requests/s: about the published mean gap (18.97 µs)
    gaps = [presets.etc_gap(rng.random()) / rate for _ in range(DRAWS)]
    shape = presets.ETC_ARRIVAL_SHAPE
    published = stats.genpareto(c=shape, loc=0, scale=16.0292e-6)
    assert stats.kstest(gaps, published.cdf).pvalue > 0.01
    assert np.mean(gaps) == pytest.approx(1 / rate, rel=0.03)
    assert stats.kstest(gaps, stats.expon(scale=1 / rate).cdf).pvalue < 1e-6  # (not a Poisson process)


def test_the_preset_fills_arguments_the_mark_can_override():
    etc = Workload.from_args({"preset": "facebook-etc", "rate": 1_000})
    assert (
        etc.preset == "facebook-etc" and etc.arrivals == "etc" and dict(etc.commands)["get"] == pytest.approx(30 / 31)
    )
    mine = Workload.from_args({"preset": "facebook-etc", "commands": {"get": 1.0}, "value_size": 100})
    assert mine.commands == (("get", 1.0),) and mine.value_size == ((100, 100, 1.0),)
    assert mine.key_size == presets.etc_key_sizes()
    with pytest.raises(WorkloadError, match="preset='ycsb-e': allowed: facebook-etc, ycsb-a, ycsb-b, ycsb-c"):
        Workload.from_args({"preset": "ycsb-e"})


@pytest.mark.parametrize(
    ("name", "commands", "pattern"),
    [
        ("ycsb-a", {"get": 0.5, "set": 0.5}, "zipf:0.99"),
        ("ycsb-b", {"get": 0.95, "set": 0.05}, "zipf:0.99"),
        ("ycsb-c", {"get": 1.0}, "zipf:0.99"),
        ("ycsb-d", {"get": 0.95, "set": 0.05}, "latest:0.05"),
        ("ycsb-f", {"get": 0.5, "cas": 0.5}, "zipf:0.99"),
    ],
)
def test_ycsb_core_workloads_as_published(name, commands, pattern):
    workload = Workload.from_args({"preset": name})
    assert dict(workload.commands) == commands and workload.key_pattern == pattern
    assert workload.value_size == ((1_000, 1_000, 1.0),)


def test_read_latest_is_a_zipfian_over_recency_that_moves_with_the_inserts():
    rng = random.Random(SEED)
    keys = 1_000
    chooser = Latest(keys, 0.05, rng.random)
    offsets: Counter[int] = Counter()
    inserts = 0
    for _ in range(DRAWS):
        before = chooser.newest
        index = chooser()
        if chooser.newest != before:
            inserts += 1
            assert index == chooser.newest == (before + 1) % keys
        else:
            offsets[(before - index) % keys] += 1
    assert inserts / DRAWS == pytest.approx(0.05, abs=0.01)
    ranks = np.arange(1, keys + 1)
    zipf = 1 / ranks**0.99
    expected = zipf / zipf.sum() * sum(offsets.values())
    top = 20  # the 20 most recent keys, then the rest as one cell
    observed = [offsets[i] for i in range(top)] + [sum(offsets[i] for i in range(top, keys))]
    cells = [*expected[:top], expected[top:].sum()]
    assert stats.chisquare(observed, cells).pvalue > 0.01


def test_a_preset_runs_against_a_real_server(own_server):
    from pytest_memaslap import Target, run_shard

    workload = Workload.from_args(
        {"preset": "facebook-etc", "rate": 2_000, "duration": "0.5s", "connections": 4, "keys": 2_000}
    )
    result = run_shard(workload, Target(own_server.host, own_server.port), "etc:")
    measured = result.measured.commands
    assert measured["get"].ops > 0 and measured["get"].misses == 0
    assert sum(c.errors for c in measured.values()) == 0
    workload = Workload.from_args({"preset": "ycsb-f", "duration": "0.3s", "connections": 2, "keys": 500})
    measured = run_shard(workload, Target(own_server.host, own_server.port), "ycf:").measured.commands
    assert measured["cas"].ops > 0 and measured["gets"].ops >= measured["cas"].ops


def test_sample_tables_keep_the_spec_of_many_segments():
    """(The value spec has hundreds of segments: the 64k table the engine draws from keeps their shares.)"""
    table = sample_table(presets.etc_value_sizes(), random.Random(SEED))
    assert sum(1 for size in table if size <= 14) / len(table) == pytest.approx(sum(presets.ETC_VALUE_HEAD), abs=0.002)


def test_memaslap_py_takes_a_preset_and_refuses_an_unknown_one(own_server):
    import subprocess
    import sys

    command = [sys.executable, "-m", "pytest_memaslap.cli.memaslap", "-s", own_server.address, "-t", "0.3s"]
    done = subprocess.run([*command, "--preset", "ycsb-b", "-c", "2"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "get_prop=0.95" in done.stdout and "set_prop=0.05" in done.stdout
    refused = subprocess.run([*command, "--preset", "etc"], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "preset='etc': allowed: facebook-etc, ycsb-a" in refused.stderr


def test_a_workload_with_or_without_a_preset_survives_its_wire_form():
    for args in ({}, {"preset": "ycsb-d", "keys": 5_000}):
        workload = Workload.from_args(args)
        assert Workload.from_args(workload.to_dict()) == workload

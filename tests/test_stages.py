"""Staged open loops (``stages=``): the rate profile's maths, the argument's validation, real staged runs."""

from __future__ import annotations

import json
import math
import random

import pytest
from conftest import run_subprocess
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_memaslap.model.rate_profile import RateProfile
from pytest_memaslap.model.workload import Workload, WorkloadError

STAGES = (("10s", "1k"), ("20s", "50k"), ("10s", "50k"), ("5s", 0))


def test_a_profile_ramps_linearly_between_its_stages():
    profile = Workload.from_args({"stages": STAGES}).rate_profile()
    assert profile is not None and profile.duration_s == 45
    assert [profile.rate_at(t) for t in (0, 5, 10, 20, 30, 35, 42.5, 45)] == [
        0,
        500,
        1000,
        25_500,
        50_000,
        50_000,
        25_000,
        0,
    ]
    # the integral: 5k + 510k + 500k + 125k requests
    assert math.isclose(profile.requests_until(45), 1_140_000)
    assert profile.time_of(1_140_001) == math.inf


@settings(max_examples=200, deadline=None)
@given(
    start=st.floats(0, 1e5),
    stages=st.lists(st.tuples(st.floats(0.01, 100), st.floats(0, 1e5)), min_size=1, max_size=6),
    share=st.floats(0.001, 0.999),
)
def test_time_of_inverts_requests_until(start, stages, share):
    profile = RateProfile(start, tuple(stages))
    total = profile.requests_until(profile.duration_s)
    if total <= 0:
        return
    count = total * share
    t = profile.time_of(count)
    assert 0 <= t <= profile.duration_s
    assert math.isclose(profile.requests_until(t), count, rel_tol=1e-6, abs_tol=1e-6)


def test_a_constant_rate_is_one_division():
    profile = RateProfile.constant(2000.0)
    assert profile.time_of(500) == 0.25 and profile.requests_until(3) == 6000
    assert Workload.from_args({"rate": "2k"}).rate_profile() == profile


@pytest.mark.parametrize(
    ("stages", "message"),
    [
        ([], "1 to 100 stages"),
        ("10s", "expected a list of (duration, rate) pairs"),
        ([("10s",)], "stage 1 is ('10s',)"),
        ([("0s", "1k")], "stage 1 lasts '0s'"),
        ([("1s", "fast")], "stages[1] rate='fast'"),
        ([("1s", 0), ("2s", "0")], "every stage's rate is 0"),
        ([("1s", "20M")], "at most 10M requests per second"),
    ],
)
def test_bad_stages_are_one_clear_error(stages, message):
    with pytest.raises(WorkloadError, match="stages") as caught:
        Workload.from_args({"stages": stages})
    assert message in str(caught.value)


def test_stages_set_the_duration_and_a_later_duration_rescales_them():
    staged = Workload.from_args({"stages": STAGES})
    assert staged.duration == 45 and staged.open_loop and staged.rate is None
    shorter = Workload.from_args({"duration": 9}, base=staged)  # what --slap-duration=9 does
    assert shorter.duration == 9 and [d for d, _ in shorter.stages] == [2, 4, 2, 1]
    with pytest.raises(WorkloadError, match="they last 45 s in all, and duration=30 s says otherwise"):
        Workload.from_args({"stages": STAGES, "duration": 30})
    with pytest.raises(WorkloadError, match="drop ops="):
        Workload.from_args({"stages": STAGES, "ops": 1000})


STAGED_TEST = """
import pytest

@pytest.mark.slap(connections=8, keys=1000, arrivals="uniform",
                  stages=[("1s", "2k"), ("2s", "6k"), ("1s", "6k"), ("1s", 0)])
def test_staged(slap):
    slap()
"""


@pytest.mark.parametrize("shards", [1, 2])
def test_a_staged_run_follows_its_profile_second_by_second(pytester, shards):
    """Each second's achieved rate is its target (within 3 %, plus a few requests; the sum, when the run says the
    machine stalled its senders); with 2 shards, together."""
    pytester.makepyfile(STAGED_TEST)
    args = ["--slap-json=out.json", "--slap-html=out.html"] + ([f"--slap-shards={shards}"] if shards > 1 else [])
    result = run_subprocess(pytester, *args) if shards > 1 else pytester.runpytest("-p", "no:cacheprovider", *args)
    result.assert_outcomes(passed=shards)
    result.stdout.fnmatch_lines(["*test_staged: stages*", "*stage*target ramp/s*achieved/s*"])
    page = (pytester.path / "out.html").read_text()
    assert "<h3>Stages</h3>" in page and '"name":"target"' in page  # the stages table, the chart's target line
    test = next(iter(json.loads((pytester.path / "out.json").read_text())["tests"].values()))
    assert test["shards"] == shards
    timeline, drained = test["timeline"][:5], test["timeline"][5:]  # (replies of the last sends may end later)
    assert [p["target"] for p in timeline] == [1000.0, 3000.0, 5000.0, 6000.0, 3000.0]
    assert all(p["target"] == 0 and p["ops"] < 100 for p in drained), drained
    if test["rate"]["send_lag_us"]["p99"] < 50_000:
        for point in timeline:
            assert abs(point["ops"] - point["target"]) <= point["target"] * 0.03 + 20, timeline
    else:  # (the machine stalled the senders, as the run says: they caught up, so the seconds shift, not the sum)
        assert abs(sum(p["ops"] for p in timeline) - 18_000) <= 18_000 * 0.03, timeline
    stages = test["stages"]
    assert [s["target"] for s in stages] == [1000.0, 4000.0, 6000.0, 3000.0]
    assert [(s["target_from"], s["target_to"]) for s in stages] == [(0, 2000), (2000, 6000), (6000, 6000), (6000, 0)]
    assert test["rate"]["target"] == pytest.approx(18_000 / 5)  # 1k + 3k + 5k + 6k + 3k requests in 5 s
    assert set(test["rate"]["send_lag_us"]) == {"p50", "p99", "p999", "max"}


def test_poisson_stages_keep_their_mean_rate():
    """Poisson arrivals in count space, mapped through the profile: each stage gets its share of requests."""
    profile = RateProfile(0.0, ((2.0, 4000.0), (2.0, 4000.0)))
    rng = random.Random(5)
    count, times = 0.0, []
    while (t := profile.time_of(count)) < math.inf:
        times.append(t)
        count += rng.expovariate(1.0)
    first = sum(1 for t in times if t < 2.0)
    assert abs(first - 4000) < 4 * math.sqrt(4000) and abs(len(times) - first - 8000) < 4 * math.sqrt(8000)


def test_connection_steps_are_parsed_and_set_the_duration():
    stepped = Workload.from_args({"connections": (2, 3, 10), "step_duration": "2s"})
    assert (stepped.connections, stepped.connection_steps, stepped.step_count(), stepped.duration) == (10, (2, 3), 4, 8)
    assert [stepped.active_connections(step) for step in range(4)] == [2, 5, 8, 10]
    assert Workload.from_args({"duration": 4}, base=stepped).step_duration == 1  # --slap-duration=4
    assert Workload.from_args({"connections": 6}, base=stepped).connection_steps is None  # --slap-connections=6
    assert Workload.from_args(stepped.to_dict()) == stepped  # (what crosses to an xdist worker)
    for bad, message in (
        ((2, 2), "a count, or (first, step, last)"),
        ((8, 1, 4), "last (4) must be more than first (8)"),
        ((1, 0, 4), "a count, or (first, step, last)"),
    ):
        with pytest.raises(WorkloadError, match="connections=") as caught:
            Workload.from_args({"connections": bad})
        assert message in str(caught.value)
    with pytest.raises(WorkloadError, match="connection steps are a closed loop"):
        Workload.from_args({"connections": (1, 1, 3), "rate": "1k"})


STEPPED_TEST = """
import pytest

@pytest.mark.slap(connections=(2, 2, 6), step_duration="1s", keys=1000)
def test_stepped(slap):
    slap()
"""


@pytest.mark.parametrize("shards", [1, 2])
def test_connection_steps_add_connections_as_the_run_goes(pytester, shards):
    """Each step runs its share of connections on each shard; throughput per step in the JSON and the terminal."""
    pytester.makepyfile(STEPPED_TEST)
    args = ["--slap-json=out.json"] + ([f"--slap-shards={shards}"] if shards > 1 else [])
    result = run_subprocess(pytester, *args) if shards > 1 else pytester.runpytest("-p", "no:cacheprovider", *args)
    result.assert_outcomes(passed=shards)
    result.stdout.fnmatch_lines(["*test_stepped: connection steps*", "*step*connections*ops/s*"])
    test = next(iter(json.loads((pytester.path / "out.json").read_text())["tests"].values()))
    steps = test["connection_steps"]
    assert [s["connections"] for s in steps] == [2, 4, 6]
    assert all(s["ops"] > 0 and s["errors"] == 0 for s in steps)
    assert test["duration_s"] == pytest.approx(3.0, abs=0.2)

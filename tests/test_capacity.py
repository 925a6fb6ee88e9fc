"""Capacity searches: the planner's decisions, the mark's validation, and searches against real servers.

The truth test puts memcached behind a link limited by a ``tbf`` qdisc, so the
right answer is known from the link, not from the engine: a closed loop with
many connections measures what the link carries, and a search with a loose
latency SLO must land close below it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import pytest
from conftest import namespace_link, needs_namespaces, run_subprocess

from pytest_memaslap.model.capacity import CapacityError, CapacityPlanner, CapacitySearch, step_passed

COMMANDS = ("get", "set")


def _search(**args: object) -> CapacitySearch:
    return CapacitySearch.from_args({"slo": "p99 < 1ms", **args}, COMMANDS)


def _run_planner(search: CapacitySearch, server_capacity: float, step_s: float = 1.0) -> CapacityPlanner:
    """Drive the planner against a server that keeps the SLO up to ``server_capacity``."""
    planner = CapacityPlanner(search)
    elapsed = 0.0
    while (rate := planner.next_rate(elapsed)) is not None:
        planner.record(rate, rate <= server_capacity)
        elapsed += step_s
    return planner


@pytest.mark.parametrize("server_capacity", [1_500.0, 37_000.0, 123_456.0, 999_999.0])
def test_the_search_brackets_the_capacity_within_its_precision(server_capacity):
    planner = _run_planner(_search(start="1k", precision=0.05, max_steps=60), server_capacity)
    assert planner.stopped_by == "precision"
    assert server_capacity * 0.95 <= planner.capacity <= server_capacity
    assert planner.bad is not None and planner.bad > server_capacity


def test_the_search_stops_at_its_limit_and_says_so():
    planner = _run_planner(_search(start="1k", limit="50k"), server_capacity=1e9)
    assert planner.stopped_by == "limit" and planner.capacity == 50_000
    assert planner.steps == 7  # 1k 2k 4k 8k 16k 32k, then the limit itself


def test_the_search_stops_at_max_steps_and_at_its_time_limit():
    by_steps = _run_planner(_search(start="1k", max_steps=3), server_capacity=1e9)
    assert by_steps.stopped_by == "max_steps" and by_steps.steps == 3 and by_steps.capacity == 4_000
    by_time = _run_planner(_search(start="1k", step="2s", time_limit="7s"), server_capacity=1e9, step_s=2.0)
    assert by_time.stopped_by == "time_limit" and by_time.steps == 3
    assert by_steps.lower_bound and by_time.lower_bound  # (no step failed: the capacity is at least this)
    assert not _run_planner(_search(start="1k", max_steps=6), server_capacity=5_000).lower_bound


def test_a_capacity_that_is_a_lower_bound_reads_so_and_thresholds_know_it():
    from pytest_memaslap.engine.hot.recorder import PhaseRecorder
    from pytest_memaslap.model.thresholds import Threshold
    from pytest_memaslap.model.workload import Workload
    from pytest_memaslap.stats.result import SlapResult
    from pytest_memaslap.stats.results import ShardResult
    from pytest_memaslap.stats.verdicts import judge_threshold

    raw = ShardResult()
    raw.phases["measured"] = PhaseRecorder(("get",), 0).finish(1_000_000_000)
    raw.capacity = {"slo": ["p99 < 1ms"], "ops_per_sec": 4000.0, "lower_bound": True, "stopped_by": "max_steps"}
    result = SlapResult(Workload(), raw)
    assert judge_threshold(Threshold.parse("capacity >= 3k"), result).passed
    undecided = judge_threshold(Threshold.parse("capacity >= 5k"), result)
    assert undecided.inconclusive and "the capacity is at least" in undecided.why
    assert undecided.row()[3] == "at least 4,000 ops/s" and undecided.to_dict()["interval"]["high"] is None
    assert judge_threshold(Threshold.parse("capacity <= 3k"), result).failed
    raw.capacity["lower_bound"] = False
    assert judge_threshold(Threshold.parse("capacity >= 5k"), result).failed


def test_a_server_that_fails_the_first_step_is_searched_downwards_to_zero():
    planner = _run_planner(_search(start="1k", max_steps=60), server_capacity=0.0)
    assert planner.stopped_by == "nothing_passed" and planner.capacity == 0.0
    found = _run_planner(_search(start="10k", max_steps=60), server_capacity=3_000.0)
    assert found.stopped_by == "precision" and 2_850 <= found.capacity <= 3_000


def test_a_step_that_answers_late_did_not_take_its_rate():
    """All 1000 requests answered, but the drain took a tenth of the step: the server fell behind."""
    assert step_passed(sent=1000, step_s=1.0, answered=1000, elapsed_s=1.001, slo_passed=True)
    assert not step_passed(sent=1000, step_s=1.0, answered=1000, elapsed_s=1.1, slo_passed=True)
    assert not step_passed(sent=1000, step_s=1.0, answered=1000, elapsed_s=1.0, slo_passed=False)
    assert not step_passed(sent=0, step_s=1.0, answered=0, elapsed_s=1.0, slo_passed=True)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({}, "give slo="),
        ({"slo": "p99 < 1ms", "speed": 3}, "unknown argument 'speed'; allowed: slo, start"),
        ({"slo": "capacity > 5k"}, "the search sets the rate"),
        ({"slo": "p99 < 1"}, "needs a time unit"),
        ({"slo": "touch.p99 < 1ms"}, "sends no 'touch' requests"),
        ({"slo": 5}, "expected an expression or a list"),
        ({"slo": "p99 < 1ms", "start": "fast"}, "start='fast'"),
        ({"slo": "p99 < 1ms", "start": "10k", "limit": "5k"}, "limit='5k' is below start='10k'"),
        ({"slo": "p99 < 1ms", "precision": 2}, "precision=2: a share from 0.001 to 0.5"),
        ({"slo": "p99 < 1ms", "max_steps": 1}, "max_steps=1: a whole number from 2 to 200"),
        ({"slo": "p99 < 1ms", "step": "2s", "time_limit": "1s"}, "shorter than one step"),
    ],
)
def test_bad_arguments_are_one_clear_error(args, message):
    with pytest.raises(CapacityError, match="slap_capacity") as caught:
        CapacitySearch.from_args(args, COMMANDS)
    assert message in str(caught.value)


def test_a_capacity_threshold_without_a_search_fails_collection(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.slap_thresholds("capacity >= 10k")
        def test_fixed(slap):
            slap()
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*threshold on capacity: it is measured by a capacity search; add a slap_capacity*"])
    assert result.ret != 0


def test_a_search_with_a_rate_fails_collection(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.slap(rate="1k")
        @pytest.mark.slap_capacity(slo="p99 < 1ms")
        def test_search(slap):
            slap()
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*slap_capacity: the search sets the rate of each step; remove rate=*"])


CAPACITY_TEST = """
import pytest

@pytest.mark.slap(connections=8, keys=500, value_size=256)
@pytest.mark.slap_capacity(slo=["p99 < 20ms", "errors == 0"], start="2k", step="0.3s", limit="1M", time_limit="20s")
@pytest.mark.slap_thresholds("capacity >= 2k")
def test_search(slap):
    result = slap()
    assert result.capacity == result.raw.capacity["ops_per_sec"]
    assert len(result.capacity_steps) >= 4
"""


@pytest.mark.parametrize("xdist", [False, True])
def test_a_search_on_loopback_completes_and_is_reported(pytester, xdist):
    """In-process and in an xdist worker: at least 4 steps, the capacity in the summary, the JSON and thresholds.

    (Against the closed-loop maximum it is checked on a link of known capacity, below: on loopback an open
    loop with a loose SLO pipelines without bound, and may pass a closed loop's window-bound maximum.)
    """
    pytester.makepyfile(CAPACITY_TEST)
    args = ["--slap-json=out.json"] + (["-n", "1"] if xdist else [])
    result = run_subprocess(pytester, *args) if xdist else pytester.runpytest("-p", "no:cacheprovider", *args)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["*test_search: capacity * ops/s under p99 < 20ms and errors == 0 (* steps, stopped by *"]
    )
    tests = json.loads((pytester.path / "out.json").read_text())["tests"]
    test = tests["test_a_search_on_loopback_completes_and_is_reported.py::test_search"]
    capacity = test["capacity"]
    assert capacity["slo"] == ["p99 < 20ms", "errors == 0"] and capacity["ops_per_sec"] >= 2_000
    steps = capacity["steps"]
    assert len(steps) >= 4 and any(not s["passed"] for s in steps) or capacity["stopped_by"] in ("limit", "time_limit")
    assert set(steps[0]) >= {"rate", "achieved", "passed", "slo_passed", "p50_us", "p99_us", "p999_us", "errors"}
    assert steps[0]["send_lag_p99_us"] >= 0
    assert max(s["rate"] for s in steps if s["passed"]) == capacity["ops_per_sec"]
    assert test["thresholds"][0]["expr"] == "capacity >= 2k" and test["thresholds"][0]["passed"]


needs_tc = pytest.mark.skipif(shutil.which("tc") is None, reason="needs iproute2's tc to limit a link's rate")

LINK_LOAD = """
import json, sys
from pytest_memaslap import Target, Workload, run_shard
from pytest_memaslap.model.capacity import CapacitySearch

host, port = sys.argv[1], int(sys.argv[2])
target = Target(host, port)
base = {"keys": 200, "value_size": 1024, "commands": {"get": 1.0}, "timeout": "10s"}
closed = run_shard(Workload.from_args({**base, "duration": "2s", "connections": 16, "window": 4}), target, "link:")
out = {"closed": closed.measured.ops / closed.measured.elapsed_s}
# loose: even arrivals, a tail SLO only a full queue breaks; tight: bursty (Poisson) arrivals, a tail of a few replies
for name, slo, arrivals in (("loose", "get.p99 < 300ms", "uniform"), ("tight", "get.p99 < 2ms", "poisson")):
    workload = Workload.from_args({**base, "connections": 8, "arrivals": arrivals})
    search = CapacitySearch.from_args(
        {"slo": slo, "start": "400", "step": "1s", "precision": 0.05, "time_limit": "30s"}, ("get",)
    )
    raw = run_shard(workload, target, f"link{name}:", capacity=search)
    out[name] = raw.capacity
print(json.dumps(out))
"""


@needs_namespaces
@needs_tc
def test_a_search_finds_the_capacity_of_a_rate_limited_link(no_new_memcached, tmp_path):
    """memcached's replies cross a 16 Mbit/s link (tbf): 1 KiB gets saturate it near 1.7k/s.

    The closed loop measures what the link carries; a search with a loose tail
    SLO lands within 80-102 % of it, a tight one lower.
    """
    from pytest_memaslap.memcached.server import ServerConfig, start_server

    with namespace_link(207, "slapcap") as link:
        # the server's side sends the replies: limit its egress (what a 16 Mbit/s link does, queue included)
        subprocess.run(
            ["tc", "qdisc", "add", "dev", link.device, "root", "tbf"]
            + ["rate", "16mbit", "burst", "16kb", "latency", "200ms"],
            check=True,
            capture_output=True,
            timeout=10,
        )
        server = start_server(ServerConfig(threads=2, memory_mb=64, extra_args=("-l", link.near)))
        try:
            script = tmp_path / "link_load.py"
            script.write_text(textwrap.dedent(LINK_LOAD))
            done = link.run(sys.executable, str(script), link.near, str(server.port), capture_output=True, timeout=180)
            assert done.returncode == 0, done.stderr[-3000:]
            out = json.loads(done.stdout.strip().splitlines()[-1])
        finally:
            server.stop()
    closed, loose, tight = out["closed"], out["loose"], out["tight"]
    print(f"closed {closed:.0f}/s, loose {loose['ops_per_sec']:.0f}/s, tight {tight['ops_per_sec']:.0f}/s")
    assert 1_200 <= closed <= 2_000, out  # (16 Mbit/s of ~1.1 KB replies)
    assert 0.80 * closed <= loose["ops_per_sec"] <= 1.02 * closed, out
    assert tight["ops_per_sec"] < loose["ops_per_sec"], out
    assert loose["stopped_by"] == "precision", out


def test_a_saved_capacity_is_compared_and_can_gate_a_merge(pytester):
    """The baseline's capacity beside this run's; --slap-compare-fail fails the session when it drops too far."""
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.slap(connections=4, keys=200)
        @pytest.mark.slap_capacity(slo="p99 < 50ms", start="1k", step="0.2s", max_steps=3)
        def test_search(slap):
            slap()
        """
    )
    pytester.runpytest("-p", "no:cacheprovider", "--slap-save=base", "--slap-rounds=2").assert_outcomes(passed=1)
    saved = next((pytester.path / ".slap").glob("*base*.json"))
    document = json.loads(saved.read_text())
    test = next(iter(document["tests"].values()))
    # a baseline far beyond what this machine reaches, whatever its load: this run must regress against it
    test["capacity"]["ops_per_sec"] = 10_000_000
    test["rounds"]["values"]["capacity"] = [10_000_000, 10_500_000]
    saved.write_text(json.dumps(document))
    args = ("-p", "no:cacheprovider", "--slap-compare=base", "--slap-compare-fail=capacity:-20%", "--slap-rounds=2")
    result = pytester.runpytest(*args)
    result.stdout.fnmatch_lines(["*test_search*capacity*10,2*ops/s*-*regression (allowance -20%)*"])
    assert result.ret != 0


def test_a_retry_counts_as_a_step_and_only_when_there_is_room_for_it():
    planner = CapacityPlanner(_search(start="1k", max_steps=3))
    rate = planner.next_rate(0.0)
    assert rate == 1000 and planner.may_retry(1.0)  # 1 try so far, room for the retry
    planner.record(rate, True)
    assert planner.steps == 2
    rate = planner.next_rate(2.0)
    assert rate == 2000 and not planner.may_retry(3.0)  # a retry would be the 4th step
    planner.record(rate, False)
    assert planner.steps == 3 and planner.next_rate(3.0) is None and planner.stopped_by == "max_steps"


def test_only_a_narrow_miss_is_tried_again():
    from pytest_memaslap.model.capacity import narrow_miss
    from pytest_memaslap.model.thresholds import Threshold, Verdict

    rule = Threshold.parse("p99 < 1ms")
    near, far = Verdict(rule, 1_500.0, "FAIL"), Verdict(rule, 25_000.0, "FAIL")
    assert narrow_miss([near], sent=1000, step_s=1.0, answered=1000, elapsed_s=1.0)
    assert not narrow_miss([far], sent=1000, step_s=1.0, answered=1000, elapsed_s=1.0)
    assert not narrow_miss([near], sent=1000, step_s=1.0, answered=1000, elapsed_s=1.5)  # far behind its rate
    assert not narrow_miss([Verdict(Threshold.parse("errors == 0"), 3.0, "FAIL")], 1000, 1.0, 1000, 1.0)

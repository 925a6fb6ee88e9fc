"""Saved runs and regression verdicts with intervals: --slap-save, --slap-compare, --slap-compare-fail, slap-compare."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from pytest_memaslap.model.allowances import AllowanceError, parse_allowances
from pytest_memaslap.output.baseline import compare
from pytest_memaslap.output.terminal import comparison_table

TWO_TESTS = """
import pytest

@pytest.mark.slap(duration="0.5s", connections=4, window=16, keys=500)
def test_fast(slap):
    slap()

@pytest.mark.slap(duration="0.5s", connections=4, keys=500)
def test_other(slap):
    slap()
"""


def _doc(ops_per_sec: float, p99: float, spread: float = 0.005) -> dict:
    """A saved run of 3 rounds spread by +-``spread`` around the given values."""
    factors = (1 - spread, 1.0, 1 + spread)
    values = {"ops_per_sec": [ops_per_sec * f for f in factors], "p99": [p99 * f for f in factors]}
    rounds = {"count": 3, "median": {"ops_per_sec": ops_per_sec, "p99": p99}, "spread_pct": {}, "values": values}
    test = {"ops_per_sec": ops_per_sec, "errors": 0, "latency_us": {"p99": p99}, "commands": {}, "rounds": rounds}
    return {"tests": {"t::a": test}}


def _scale(document: dict, factor: float) -> None:
    """Every test's throughput (each round's too) times ``factor``."""
    for test in document["tests"].values():
        test["ops_per_sec"] *= factor
        rounds = test.get("rounds") or {}
        rounds.get("values", {})["ops_per_sec"] = [v * factor for v in rounds.get("values", {})["ops_per_sec"]]


def test_allowances_and_verdicts():
    allowances = parse_allowances("ops_per_sec:-5%, p99:+10%")
    ok = compare(_doc(1000, 100), _doc(990, 102), allowances)
    assert not ok.regressions and {row.verdict.word for row in ok.rows if row.gated} == {"no change"}
    bad = compare(_doc(1000, 100), _doc(900, 120), allowances)
    assert {row.metric for row in bad.regressions} == {"ops_per_sec", "p99"} and bad.failing
    assert round(bad.regressions[0].change_pct, 1) == -10.0
    undecided = compare(_doc(1000, 100), _doc(950, 100, spread=0.05), allowances)
    assert not undecided.failing and "ops_per_sec" in [row.metric for row in undecided.inconclusive]
    assert compare(_doc(1000, 100), _doc(950, 100, spread=0.05), allowances, inconclusive_fails=True).failing


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("ops_per_sec:5", "is not METRIC:PERCENT%"),
        ("ops_per_sec:+5%", "a regression of ops_per_sec is a drop (use -N%)"),
        ("get.p99:-10%", "a regression of get.p99 is a rise (use +N%)"),
        ("speed:-5%", "unknown metric 'speed'"),
        ("getz.p99:+5%", "unknown metric 'getz.p99'"),
    ],
)
def test_bad_allowances_are_explained(spec, message):
    with pytest.raises(AllowanceError, match=re.escape(message)):
        parse_allowances(spec)


def test_save_then_compare_an_identical_configuration_passes(pytester):
    pytester.makepyfile(TWO_TESTS)
    saved = pytester.runpytest("-p", "no:cacheprovider", "--slap-save=main")
    saved.assert_outcomes(passed=2)
    document = json.loads((pytester.path / ".slap" / "main.json").read_text())
    assert set(document["machine"]) >= {"cpu", "cores", "python", "memcached_version", "git_commit"}
    assert len(document["tests"]) == 2
    result = pytester.runpytest("-p", "no:cacheprovider", "--slap-compare=main", "--slap-compare-fail=errors:+0%")
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*slap comparison with the baseline*", "*test*metric*baseline*current*change*"])


def test_a_slowed_run_fails_the_comparison_naming_the_test(pytester):
    pytester.makepyfile(TWO_TESTS)
    pytester.runpytest("-p", "no:cacheprovider", "--slap-save=main", "--slap-rounds=3").assert_outcomes(passed=2)
    # the same tests, one of them now closed-loop on one connection instead of 4 x 16 pipelined: far slower
    pytester.makepyfile(
        TWO_TESTS.replace("def test_fast(slap):\n    slap()", "def test_fast(slap):\n    slap(connections=1, window=1)")
    )
    args = (
        "-p",
        "no:cacheprovider",
        "--slap-compare=main",
        "--slap-compare-fail=ops_per_sec:-30%",
        "--slap-json=r.json",
    )
    result = pytester.runpytest(*args, "--slap-rounds=3")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*test*metric*baseline*current*change*95% interval*rounds*verdict*",
            "*test_fast*ops_per_sec*3 / 3*regression (allowance -30%)*",
            "*regressions past the allowances in: *test_fast*",
        ]
    )
    rows = json.loads((pytester.path / "r.json").read_text())["comparison"]["rows"]
    (fast,) = [row for row in rows if row["metric"] == "ops_per_sec" and "test_fast" in row["test"]]
    assert fast["verdict"] == "regression" and fast["interval_pct"][1] < 0 and len(fast["current_values"]) == 3
    # one round a side: the noise is unknown, so the same slowdown is inconclusive, and fails only when asked to
    single = pytester.runpytest(*args)
    assert single.ret == pytest.ExitCode.OK
    single.stdout.fnmatch_lines(["*inconclusive: a side has a single round, so its noise is unknown*"])
    assert pytester.runpytest(*args, "--slap-inconclusive=fail").ret == pytest.ExitCode.TESTS_FAILED


def test_tests_on_one_side_only_are_reported_not_crashed_on(pytester):
    pytester.makepyfile(TWO_TESTS)
    pytester.runpytest("-p", "no:cacheprovider", "--slap-save=main").assert_outcomes(passed=2)
    pytester.makepyfile(TWO_TESTS.replace("test_other", "test_new"))
    result = pytester.runpytest("-p", "no:cacheprovider", "--slap-compare=main")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*only in the baseline: *test_other*", "*new in this run (no baseline): *test_new*"])


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        (None, ["--slap-compare=nothing"], "*baseline 'nothing': no file 'nothing' and no saved run*"),
        ("not json", ["--slap-compare=bad.json"], "*baseline 'bad.json': not JSON*"),
        ('{"x": 1}', ["--slap-compare=bad.json"], "*not a pytest-memaslap result (no 'tests' object)*"),
        (
            '{"tests": {"t::a": {"ops_per_sec": 5, "latency_us": "fast"}}}',
            ["--slap-compare=bad.json"],
            "*test 't::a': latency_us must be an object of numbers, not str*",
        ),
        (
            '{"tests": {"t::a": {"ops_per_sec": "5k", "latency_us": {}}}}',
            ["--slap-compare=bad.json"],
            "*test 't::a': ops_per_sec must be a number, not '5k'*",
        ),
        (
            '{"tests": {"t::a": {"ops_per_sec": 5, "latency_us": {}, "commands": {"get": {"latency_us": []}}}}}',
            ["--slap-compare=bad.json"],
            "*test 't::a': commands.get.latency_us must be an object of numbers, not list*",
        ),
        (
            '{"tests": {"t::a": {"ops_per_sec": 5, "latency_us": {}, "rounds": {"median": {"ops_per_sec": "x"}}}}}',
            ["--slap-compare=bad.json"],
            "*test 't::a': rounds.median.ops_per_sec must be a number, not 'x'*",
        ),
        (
            '{"tests": {"t::a": {"ops_per_sec": NaN, "latency_us": {}}}}',
            ["--slap-compare=bad.json"],
            "*NaN is not a number a run can have: the file is corrupt or was edited*",
        ),
        (
            '{"tests": {"t::a": {"ops_per_sec": 1e400, "latency_us": {}}}}',
            ["--slap-compare=bad.json"],
            "*1e400 is too large for a number a run can have*",
        ),
        ("[" * 100_000, ["--slap-compare=bad.json"], "*bad.json': not a pytest-memaslap result (nested too deeply)*"),
        (None, ["--slap-compare-fail=ops_per_sec:-5%"], "*--slap-compare-fail needs something to compare against*"),
        (None, ["--slap-save=../escape"], "*--slap-save='../escape': a name is letters, digits*"),
    ],
)
def test_malformed_or_missing_baselines_are_clear_errors(pytester, setup, args, message):
    if setup is not None:
        (pytester.path / "bad.json").write_text(setup)
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest("-p", "no:cacheprovider", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_offline_compare_command(pytester):
    old, new = pytester.path / "old.json", pytester.path / "new.json"
    old.write_text(json.dumps(_doc(1000, 100)))
    new.write_text(json.dumps(_doc(800, 100)))
    command = [sys.executable, "-m", "pytest_memaslap.cli.compare"]
    ok = subprocess.run([*command, str(old), str(old)], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "t::a" in ok.stdout
    bad = subprocess.run(
        [*command, str(old), str(new), "--fail", "ops_per_sec:-5%"], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 1
    assert "regression (allowance -5%)" in bad.stdout and "-20.0 %" in bad.stdout
    missing = subprocess.run([*command, "nope", str(new)], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "no saved run" in missing.stderr
    wrong = pytester.path / "wrong.json"  # valid JSON, wrong types: bad input (2), not a regression (1)
    wrong.write_text(json.dumps({"tests": {"t::a": {"ops_per_sec": 1.0, "latency_us": {"p99": "slow"}}}}))
    typed = subprocess.run([*command, str(old), str(wrong)], capture_output=True, text=True, timeout=60)
    assert typed.returncode == 2 and "latency_us.p99 must be a number, not 'slow'" in typed.stderr
    assert "Traceback" not in typed.stderr
    for text in ("[" * 100_000, '{"tests": {"t::a": {"ops_per_sec": Infinity, "latency_us": {}}}}'):
        wrong.write_text(text)  # (a RecursionError read as exit 1, "regression"; a NaN or infinity passed the gate)
        refused = subprocess.run([*command, str(old), str(wrong)], capture_output=True, text=True, timeout=60)
        assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
    unknown = subprocess.run([*command, str(old), str(old)], capture_output=True, text=True, timeout=60)
    assert "the baseline's machine is unknown (its file has no machine section" in unknown.stdout


def test_machines_that_differ_are_named_and_their_regressions_fail_only_when_strict():
    from pytest_memaslap.output.baseline import machine_differences

    here = {"cpu": "Xeon", "cores": 2, "memcached_version": "1.6.18", "engine": "compiled/uvloop", "python": "3.11"}
    there = {**here, "cores": 32, "engine": "python/uvloop", "python": "3.12"}
    assert machine_differences(there, here) == ["cores: 32 -> 2", "engine: python/uvloop -> compiled/uvloop"]
    assert machine_differences(None, here) == [] and machine_differences({"cores": ""}, here) == []
    allowances = parse_allowances("ops_per_sec:-5%")
    old, new = {**_doc(1000, 100), "machine": there}, {**_doc(500, 100), "machine": here}
    relaxed, strict = compare(old, new, allowances), compare(old, new, allowances, strict=True)
    assert relaxed.regressions and not relaxed.failing and strict.failing
    assert "regression (allowance -5%) on another machine" in comparison_table(relaxed)
    assert compare(_doc(1000, 100), _doc(500, 100), allowances).failing  # (no machine info: judged as the same)


MACHINE_HOOKS = """
def pytest_memaslap_update_machine_info(machine_info, config):
    machine_info["rack"] = "r42"


def pytest_memaslap_compare_machine_info(baseline, current, config):
    return [] if baseline.get("rack") == "r42" else None  # (same rack: the same machines, whatever else differs)
"""


def test_a_baseline_from_another_machine_warns_and_a_plugin_can_overrule_it(pytester):
    """cores differ: the table says so and the regression does not fail; a conftest hook says it does not matter."""
    pytester.makepyfile(TWO_TESTS)
    pytester.runpytest("-p", "no:cacheprovider", "--slap-save=main", "--slap-rounds=2").assert_outcomes(passed=2)
    saved = pytester.path / ".slap" / "main.json"
    document = json.loads(saved.read_text())
    document["machine"]["cores"] = 64
    _scale(document, 100)  # a baseline a hundred times faster: a regression for sure
    saved.write_text(json.dumps(document))
    args = ("-p", "no:cacheprovider", "--slap-compare=main", "--slap-compare-fail=ops_per_sec:-30%", "--slap-rounds=2")
    relaxed = pytester.runpytest(*args)
    assert relaxed.ret == pytest.ExitCode.OK
    relaxed.stdout.fnmatch_lines(
        [
            "*the machines differ (cores: 64 -> *): the changes may be the machines', not the code's; "
            "regressions do not fail the run (--slap-compare-strict makes them)*",
            "*regression (allowance -30%) on another machine*",
            "*not failing the run: measured on another machine*",
        ]
    )
    assert pytester.runpytest(*args, "--slap-compare-strict").ret == pytest.ExitCode.TESTS_FAILED
    # a conftest decides which differences matter, and adds to what is saved
    pytester.makeconftest(MACHINE_HOOKS)
    pytester.runpytest("-p", "no:cacheprovider", "--slap-save=racked", "--slap-rounds=2").assert_outcomes(passed=2)
    racked = json.loads((pytester.path / ".slap" / "racked.json").read_text())
    assert racked["machine"]["rack"] == "r42"
    racked["machine"]["cores"] = 64
    _scale(racked, 100)
    (pytester.path / ".slap" / "racked.json").write_text(json.dumps(racked))
    overruled = pytester.runpytest(
        "-p", "no:cacheprovider", "--slap-compare=racked", "--slap-compare-fail=ops_per_sec:-30%", "--slap-rounds=2"
    )
    assert overruled.ret == pytest.ExitCode.TESTS_FAILED  # the hook said the machines are the same
    assert "the machines differ" not in overruled.stdout.str()


def test_autosaved_runs_are_numbered_and_latest_compares_with_the_newest(pytester):
    pytester.makepyfile(TWO_TESTS)
    for _ in range(2):
        pytester.runpytest("-p", "no:cacheprovider", "--slap-autosave", "--slap-rounds=2").assert_outcomes(passed=2)
    runs = sorted(p.name for p in (pytester.path / ".slap").iterdir())
    assert [name[:5] for name in runs] == ["0001_", "0002_"], runs
    assert all(re.fullmatch(r"\d{4}_[A-Za-z0-9]+_\d{8}_\d{6}\.json", name) for name in runs), runs
    newest = json.loads((pytester.path / ".slap" / runs[1]).read_text())
    _scale(newest, 100)  # only the newest is a hundred times faster: comparing with it regresses
    (pytester.path / ".slap" / runs[1]).write_text(json.dumps(newest))
    latest = pytester.runpytest(
        "-p", "no:cacheprovider", "--slap-compare=latest", "--slap-compare-fail=ops_per_sec:-30%", "--slap-rounds=2"
    )
    assert latest.ret == pytest.ExitCode.TESTS_FAILED
    first = pytester.runpytest(
        "-p", "no:cacheprovider", "--slap-compare=1", "--slap-compare-fail=ops_per_sec:-90%", "--slap-rounds=2"
    )
    assert first.ret == pytest.ExitCode.OK
    missing = pytester.runpytest("-p", "no:cacheprovider", "--slap-compare=7")
    missing.stderr.fnmatch_lines(
        ["*baseline '7': no run saved with --slap-autosave in '.slap' (2 numbered runs there)*"]
    )
    reserved = pytester.runpytest("-p", "no:cacheprovider", "--slap-save=latest")
    reserved.stderr.fnmatch_lines(["*--slap-save='latest': 'latest' and plain numbers name autosaved runs*"])

"""--slap-rounds: repeated runs, medians and spreads, and comparisons judged on every round with an interval."""

from __future__ import annotations

import json

import pytest
from conftest import run_subprocess

from pytest_memaslap.model.allowances import parse_allowances
from pytest_memaslap.output.baseline import compare, metric_value
from pytest_memaslap.output.terminal import comparison_table
from pytest_memaslap.plugin.fixture import round_prefix
from pytest_memaslap.stats.rounds import spread_pct

ROUNDS_TEST = """
import statistics
import pytest

@pytest.mark.slap(duration="0.3s", connections=2, keys=200, preload=True, commands={"get": 1})
@pytest.mark.slap_thresholds("ops_per_sec >= 1", "get.hit_ratio == 1")
def test_rounds(slap):
    result = slap()
    assert len(result.rounds) == ROUNDS
    assert any(r is result for r in result.rounds)
    medians = statistics.median(r.ops_per_sec for r in result.rounds)
    assert result.median("ops_per_sec") == medians
    assert all(r.get.hit_ratio == 1.0 for r in result.rounds)
"""


def test_spread_is_the_range_in_percent_of_the_median():
    assert spread_pct([100.0, 110.0, 90.0]) == pytest.approx(20.0)
    assert spread_pct([5.0]) == 0.0
    assert spread_pct([0.0, 0.0]) == 0.0
    assert spread_pct([0.0, 1.0, 0.0]) == float("inf")


def test_every_round_writes_keys_of_its_own():
    assert round_prefix("sab12c_1:", 1, 1) == "sab12c_1:"
    assert {round_prefix("sab12c_1:", n, 3) for n in (1, 2, 3)} == {"sab12c_1.1:", "sab12c_1.2:", "sab12c_1.3:"}


def test_rounds_report_medians_and_spreads(pytester):
    pytester.makepyfile(ROUNDS_TEST.replace("ROUNDS", "3"))
    result = pytester.runpytest("-p", "no:cacheprovider", "--slap-rounds=3", "--slap-json=out.json")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_rounds*(3 rounds, spread *%)*2/2 pass*"])
    tests = json.loads((pytester.path / "out.json").read_text())["tests"]
    (entry,) = tests.values()
    rounds = entry["rounds"]
    assert rounds["count"] == 3
    assert len(rounds["values"]["ops_per_sec"]) == 3
    assert sorted(rounds["values"]["ops_per_sec"])[1] == rounds["median"]["ops_per_sec"]
    assert rounds["median"]["get.hit_ratio"] == 1.0 and rounds["spread_pct"]["get.hit_ratio"] == 0.0
    assert entry["thresholds"][0]["measured"] == rounds["median"]["ops_per_sec"]


def test_rounds_of_sharded_runs_are_merged_round_by_round(pytester):
    pytester.makepyfile(ROUNDS_TEST.replace("ROUNDS", "2"))
    result = run_subprocess(pytester, "--slap-shards=2", "--slap-rounds=2", "--slap-json=out.json")
    result.assert_outcomes(passed=2)
    tests = json.loads((pytester.path / "out.json").read_text())["tests"]
    (entry,) = tests.values()
    assert entry["shards"] == 2 and entry["rounds"]["count"] == 2
    assert len(entry["per_shard"]) == 2


def _doc(values: list[float]) -> dict:
    ordered = sorted(values)
    median = ordered[len(ordered) // 2]
    spread = spread_pct(values)
    return {
        "tests": {
            "t::a": {
                "ops_per_sec": values[0],  # the median round's own value is not what a comparison reads
                "errors": 0,
                "latency_us": {"p99": 100.0},
                "commands": {},
                "rounds": {
                    "count": len(values),
                    "median": {"ops_per_sec": median},
                    "spread_pct": {"ops_per_sec": spread},
                    "values": {"ops_per_sec": values},
                },
            }
        }
    }


def test_comparisons_judge_every_rounds_value_with_an_interval():
    quiet, noisy = _doc([1000.0, 1010.0, 990.0]), _doc([500.0, 1000.0, 1500.0])
    assert metric_value(noisy["tests"]["t::a"], "ops_per_sec") == 500.0  # (the representative round's own)
    allowances = parse_allowances("ops_per_sec:-5%")
    (same,) = [r for r in compare(quiet, _doc([1001.0, 1011.0, 991.0]), allowances).rows if r.gated]
    assert same.verdict.word == "no change" and same.change.has_interval
    assert same.change.low_pct > -5 and same.change.high_pct < 5
    flagged = compare(quiet, noisy, allowances)
    (row,) = [r for r in flagged.rows if r.gated]
    assert (
        not flagged.regressions
        and row.verdict.word == "inconclusive"
        and row.baseline_values == (1000.0, 1010.0, 990.0)
    )
    table = comparison_table(flagged)
    assert "the interval straddles the allowance" in table and "inconclusive: 1 gated metric(s)" in table
    slower = compare(quiet, _doc([880.0, 890.0, 895.0]), allowances)
    assert [r.metric for r in slower.regressions] == ["ops_per_sec"] and slower.failing


def test_single_round_comparisons_say_the_noise_is_unknown():
    doc = {"tests": {"t::a": {"ops_per_sec": 1.0, "errors": 0, "latency_us": {"p99": 1.0}, "commands": {}}}}
    comparison = compare(doc, doc, parse_allowances("ops_per_sec:-5%"))
    assert not comparison.failing and comparison.inconclusive
    table = comparison_table(comparison)
    assert "a side has a single round, so its noise is unknown" in table

"""Threshold expressions: syntax, units, and verdicts on a real result."""

from __future__ import annotations

import pytest

from pytest_memaslap.engine.hot.recorder import PhaseRecorder
from pytest_memaslap.model.thresholds import Threshold, ThresholdError, parse_all
from pytest_memaslap.model.workload import Workload
from pytest_memaslap.stats.result import SlapResult
from pytest_memaslap.stats.results import ShardResult


def _result() -> SlapResult:
    recorder = PhaseRecorder(("get", "set"), 0)
    for _ in range(900):
        recorder.record(0, 0, 1_000_000, 30, 1000)  # get hit, 1 ms
    for _ in range(100):
        recorder.record(1, 0, 3_000_000, 1000, 8)  # set stored, 3 ms
    raw = ShardResult()
    raw.phases["measured"] = recorder.finish(2_000_000_000)  # 2 s
    return SlapResult(Workload(), raw)


@pytest.mark.parametrize(
    ("expr", "passed"),
    [
        ("ops_per_sec >= 500", True),
        ("ops_per_sec > 0.5k", False),
        ("ops == 1000", True),
        ("errors == 0", True),
        ("hit_ratio >= 99%", True),
        ("get.p99 < 2ms", True),
        ("get.p99 < 900us", False),
        ("set.p50 <= 3.1ms", True),
        ("p99 < 2ms", False),
        ("duration <= 2s", True),
        ("set.ops_per_sec >= 50", True),
    ],
)
def test_verdicts(expr, passed):
    assert Threshold.parse(expr).evaluate(_result()).passed is passed


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("ops_per_sec >> 5", "expected 'METRIC OP VALUE'"),
        ("opz >= 5", "unknown metric 'opz'"),
        ("getz.p99 < 2ms", "unknown command 'getz'"),
        ("get.p99 < 2", "needs a time unit: us, ms or s"),
        ("hit_ratio > 2ms", "is a ratio"),
        ("ops_per_sec > 5ms", "takes a plain number or a suffix k, M or G"),
        (42, "expected a string"),
        ("hit_ratio >= 150%", "hit_ratio is a ratio from 0 to 1"),
        ("get.error_ratio < 1.5", "error_ratio is a ratio from 0 to 1"),
        ("errors == 0.5", "errors is a count: a whole number"),
        ("p99 < -1ms", "p99 is never negative"),
        ("ops_per_sec > -5", "ops_per_sec is never negative"),
    ],
)
def test_malformed_expressions_say_what_is_allowed(expr, message):
    with pytest.raises(ThresholdError, match=message):
        Threshold.parse(expr)


def test_threshold_on_a_command_the_mix_never_sends_is_refused():
    with pytest.raises(ThresholdError, match="sends no 'delete' requests"):
        parse_all(("delete.p99 < 1ms",), ("get", "set"))


def test_failing_row_shows_measured_and_required():
    verdict = Threshold.parse("get.p99 < 900us").evaluate(_result())
    expr, required, measured, interval, status = verdict.row()
    assert (required, status) == ("< 900 µs", "FAIL")
    assert measured.endswith("ms")


def test_the_load_generators_lateness_is_a_metric_thresholds_can_name():
    """``loop_lag.p99 < 1ms`` and ``send_lag.p99.9 < 500us`` read the engine's own histograms (µs)."""
    raw = ShardResult()
    for lag_ns in (10_000,) * 98 + (3_000_000,) * 2:
        raw.loop_lag.record(lag_ns)
        raw.send_lag.record(lag_ns // 10)
    result = SlapResult(Workload.from_args({"rate": "1k"}), raw)
    loop = Threshold.parse("loop_lag.p99 < 1ms").evaluate(result)
    assert not loop.passed and 2_900 < loop.measured < 3_100
    assert Threshold.parse("loop_lag.p50 < 1ms").evaluate(result).passed
    assert Threshold.parse("send_lag.max <= 310us").evaluate(result).passed
    with pytest.raises(ThresholdError, match="unknown metric 'p99x' of 'loop_lag'"):
        Threshold.parse("loop_lag.p99x < 1ms")
    with pytest.raises(ThresholdError, match="needs a time unit"):
        Threshold.parse("send_lag.p99 < 1")
    assert parse_all(("loop_lag.p99 < 1ms",), ("get",))  # (not a command the mix must send)

"""One units parser and one metric-name parser for marks, options, thresholds and memaslap-py."""

from __future__ import annotations

import pytest

from pytest_memaslap.model.metrics import MetricError, parse_metric, parse_percentiles, percentile_key
from pytest_memaslap.model.thresholds import Threshold, ThresholdError
from pytest_memaslap.model.units import UnitError, parse_count, parse_duration, parse_rate
from pytest_memaslap.model.workload import Workload, WorkloadError
from pytest_memaslap.stats.result import read_metric


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("250ns", 250e-9), ("250us", 250e-6), ("250µs", 250e-6), ("5ms", 0.005), ("10", 10.0), ("10s", 10.0)]
    + [("2m", 120.0), ("1.5h", 5400.0), ("1d", 86400.0)],
)
def test_durations_take_every_unit_and_m_is_minutes(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)
    assert Workload.from_args({"timeout": text}).timeout == pytest.approx(seconds)


@pytest.mark.parametrize(("text", "count"), [("50k", 50_000), ("50K", 50_000), ("1M", 1_000_000), ("2G", 2 * 10**9)])
def test_counts_take_k_m_g(text, count):
    assert parse_count(text, "keys") == count


@pytest.mark.parametrize("name", ["keys", "rate", "ops"])
def test_lower_case_m_on_a_count_or_rate_says_use_capital_m(name):
    with pytest.raises(WorkloadError, match=r"unknown count suffix 'm'; use M for millions"):
        Workload.from_args({name: "2m"})
    with pytest.raises(UnitError, match="use M"):
        parse_rate("2m")


def test_a_threshold_reads_units_with_the_same_parser():
    assert Threshold.parse("get.p99 < 250µs").required == pytest.approx(250.0)
    assert Threshold.parse("get.p99 < 250us").required == pytest.approx(250.0)
    assert Threshold.parse("duration >= 1m").required == pytest.approx(60.0)
    assert Threshold.parse("ops_per_sec >= 1.5M").required == pytest.approx(1.5e6)
    with pytest.raises(ThresholdError, match="use M for millions"):
        Threshold.parse("ops_per_sec >= 2m")
    with pytest.raises(ThresholdError, match="needs a time unit"):
        Threshold.parse("get.p99 < 2")


@pytest.mark.parametrize(
    ("name", "command", "metric", "q"),
    [("get.p99.9", "get", "p99.9", 99.9), ("p99.99", None, "p99.99", 99.99), ("set.p75", "set", "p75", 75.0)]
    + [("get.p999", "get", "p999", 99.9), ("ops_per_sec", None, "ops_per_sec", None)],
)
def test_metric_names_take_any_percentile(name, command, metric, q):
    parsed = parse_metric(name)
    assert (parsed.command, parsed.metric, parsed.percentile) == (command, metric, q)
    assert Threshold.parse(f"{name} < 1s" if q else f"{name} >= 1").name == name


@pytest.mark.parametrize(
    ("name", "message"),
    [("bogus.p99", "unknown command 'bogus'"), ("get.p100", "unknown metric 'p100'"), ("speed", "unknown metric")],
)
def test_bad_metric_names_say_what_is_allowed(name, message):
    with pytest.raises(MetricError, match=message):
        parse_metric(name)


def test_percentile_lists_and_their_json_keys():
    assert parse_percentiles("99.9,50,p99") == (50.0, 99.0, 99.9)
    assert [percentile_key(q) for q in (50.0, 99.9, 99.99)] == ["p50", "p999", "p99.99"]
    with pytest.raises(MetricError, match="not a percentile"):
        parse_percentiles("50,100")


def test_a_percentile_threshold_is_read_from_the_histogram():
    from test_thresholds import _result  # type: ignore[import-not-found]

    result = _result()  # 900 gets at 1 ms, 100 sets at 3 ms
    assert read_metric(result, "get.p99.9") == pytest.approx(1000, rel=0.005)
    assert read_metric(result, "p99.99") == pytest.approx(3000, rel=0.005)
    assert Threshold.parse("p99.9 < 4ms").evaluate(result).passed
    assert not Threshold.parse("p99.9 < 2ms").evaluate(result).passed


def test_greek_mu_is_read_as_micro_like_the_micro_sign():
    """U+03BC (Greek mu, what many keyboards give) and U+00B5 (the micro sign) both mean microseconds."""
    from pytest_memaslap.model.thresholds import Threshold
    from pytest_memaslap.model.units import parse_duration

    assert parse_duration("2000\u03bcs") == parse_duration("2000\u00b5s") == pytest.approx(0.002)
    assert Threshold.parse("get.p99 < 2000\u03bcs").required == Threshold.parse("get.p99 < 2ms").required


def test_numbers_too_large_or_not_numbers_are_refused_at_collection():
    from pytest_memaslap.model.thresholds import Threshold, ThresholdError
    from pytest_memaslap.model.workload import Workload, WorkloadError

    with pytest.raises(ThresholdError, match="1e400 is too large for a number a run can measure"):
        Threshold.parse("ops >= 1e400")  # (an OverflowError traceback before)
    with pytest.raises(WorkloadError, match=r"value_size: expected a size N, .*got the segment \(10, 20, nan\)"):
        Workload.from_args({"value_size": [(10, 20, float("nan"))]})
    with pytest.raises(WorkloadError, match="a proportion must be a number from 0 to 1"):
        Workload.from_args({"commands": {"get": float("nan"), "set": 1.0}})
    with pytest.raises(WorkloadError, match="allowed: duration, .*, config"):
        Workload.from_args({"durations": 1}, also_allowed=("config",))

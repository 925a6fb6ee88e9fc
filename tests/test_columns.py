"""The summary's columns: chosen with --slap-columns, fitted to the terminal's width, as users see them."""

from __future__ import annotations

import pytest
from tabulate import tabulate

from pytest_memaslap.output.columns import NAMES, ColumnError, fit, parse_columns

pytest_plugins = ["pytester"]


def _render(headers, rows) -> str:
    return tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True)


NAMES_ROW = ("test", "ops", "ops_per_sec", "latency", "errors", "mb_per_sec", "thresholds")
HEADER = ("test", "ops", "ops/s", "get p99 µs", "errors", "MB/s", "thresholds")
ROW = ("tests/perf/test_a_rather_long_module_name.py::test_with_a_long_name", "1,000,000", "100,000", "123.4", "0",
       "12.5", "2/2 pass")  # fmt: skip


def test_columns_are_named_in_the_summarys_order_and_a_bad_name_is_refused_with_the_allowed_ones():
    assert parse_columns("errors, ops_per_sec") == ("ops_per_sec", "errors")
    assert parse_columns("all") == NAMES
    with pytest.raises(ColumnError, match=r"unknown column 'p99'; allowed: shards, duration, .*, or all"):
        parse_columns("ops_per_sec,p99")


def test_a_table_too_wide_loses_the_least_needed_columns_then_the_middle_of_the_test_name():
    wide = _render(HEADER, [ROW])
    assert fit(HEADER, [ROW], NAMES_ROW, (), 1000, _render) == (list(HEADER), [list(ROW)])
    width = max(len(line) for line in wide.splitlines()) - 10
    headers, rows = fit(HEADER, [ROW], NAMES_ROW, (), width, _render)
    assert headers == ["test", "ops/s", "get p99 µs", "errors", "thresholds"]  # (MB/s, then ops, dropped)
    headers, rows = fit(HEADER, [ROW], NAMES_ROW, (), 80, _render)
    assert max(len(line) for line in _render(headers, rows).splitlines()) <= 80
    assert rows[0][0].startswith("tests/") and rows[0][0].endswith("with_a_long_name") and "…" in rows[0][0]
    headers, _ = fit(HEADER, [ROW], NAMES_ROW, ("mb_per_sec",), 80, _render)
    assert "MB/s" in headers  # (a column the user named stays)


LONG_TEST = """
import pytest

@pytest.mark.slap(ops=2000, connections=2, keys=200)
@pytest.mark.slap_thresholds("errors == 0")
def test_a_test_whose_name_is_long_enough_to_need_a_wide_column_in_the_summary_table(slap):
    slap()
"""


def test_the_summary_fits_the_terminal_and_takes_the_columns_asked_for(pytester, monkeypatch):
    pytester.makepyfile(**{"test_a_module_whose_name_is_long_as_well": LONG_TEST})
    monkeypatch.setenv("COLUMNS", "100")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    lines = result.stdout.str().split("slap summary", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
    assert lines and max(len(line) for line in lines) <= 100, lines
    assert "ops/s" in lines[0] and "thresholds" in lines[0] and "…" in lines[2]
    monkeypatch.setenv("COLUMNS", "200")
    result = pytester.runpytest("-p", "no:cacheprovider", "--slap-columns=ops,hit_ratio")
    result.stdout.fnmatch_lines(["test*ops*hit ratio", "*::test_a_test_whose_name_is_long*2,000*1.0000"])
    assert "thresholds" not in result.stdout.str().split("slap summary", 1)[1].splitlines()[1]
    result = pytester.runpytest("-p", "no:cacheprovider", "--slap-columns=speed")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--slap-columns='speed': unknown column 'speed'; allowed: shards, *"])

"""The terminal's tables: the slap summary, a failing test's thresholds, the comparison with a baseline."""

from __future__ import annotations

from typing import Any

from tabulate import tabulate

from pytest_memaslap.model.metrics import DEFAULT_PERCENTILES, format_metric, percentile_key, percentile_label
from pytest_memaslap.output.baseline import Comparison


def summary_headers(percentiles: tuple[float, ...] = DEFAULT_PERCENTILES) -> tuple[str, ...]:
    """The summary's columns: get's latency at each asked percentile and its max, set's at the highest one."""
    gets = tuple(f"get {percentile_label(q)} µs" for q in percentiles)
    top = percentile_label(percentiles[-1])
    return ("test", "shards", "duration s", "ops", "ops/s", *gets, "get max µs", f"set {top} µs") + (
        "hit ratio",
        "errors",
        "MB/s",
        "thresholds",
    )


HEADERS = summary_headers()


def _median(entry: dict[str, Any], metric: str, single: float) -> float:
    """With rounds, the metric's median over them (what thresholds judge); else the single run's value."""
    rounds = entry["result"].get("rounds")
    return float(rounds["median"].get(metric, single)) if rounds else single


def _latency(entry: dict[str, Any], command: str, metric: str) -> str:
    cmd = entry["result"]["commands"].get(command)
    if cmd is None or metric not in cmd["latency_us"]:
        return "-"
    return f"{_median(entry, f'{command}.{metric}', cmd['latency_us'][metric]):,.1f}"


def _throughput(entry: dict[str, Any]) -> str:
    """ops/s; with rounds, the median and its spread (max - min in % of the median)."""
    result = entry["result"]
    text = f"{_median(entry, 'ops_per_sec', result['ops_per_sec']):,.0f}"
    target = result["workload"].get("rate")
    if target:
        text += f" of {target:,.0f}"
    rounds = result.get("rounds")
    if rounds:
        spread = rounds["spread_pct"].get("ops_per_sec")
        text += f" ({rounds['count']} rounds, spread {'n/a' if spread is None else f'{spread:.1f}%'})"
    return text


def verdict_text(entry: dict[str, Any]) -> str:
    if entry["result"].get("error"):
        return "run failed"
    if entry["result"].get("interrupted"):
        return "interrupted"
    verdicts = entry["thresholds"]
    if not verdicts:
        return "-"
    failed = sum(1 for v in verdicts if not v["passed"])
    text = f"{len(verdicts) - failed}/{len(verdicts)} pass" if not failed else f"FAIL {failed}/{len(verdicts)}"
    return text if entry["enforced"] else f"{text} (not enforced)"


def terminal_table(entries: list[dict[str, Any]], percentiles: tuple[float, ...] = DEFAULT_PERCENTILES) -> str:
    """One row per slap run, units in the headers."""
    headers = summary_headers(percentiles)
    return tabulate(
        summary_rows(entries, percentiles),
        headers=headers,
        tablefmt="simple",
        disable_numparse=True,
        colalign=("left",) + ("right",) * (len(headers) - 1),
    )


def summary_rows(
    entries: list[dict[str, Any]], percentiles: tuple[float, ...] = DEFAULT_PERCENTILES
) -> list[tuple[str, ...]]:
    """The summary's cells (as ``summary_headers`` names them), shared by the terminal and the HTML report."""
    rows: list[tuple[str, ...]] = []
    for entry in entries:
        result = entry["result"]
        has_get = "get" in result["commands"]
        rows.append(
            (
                entry["key"],
                str(result["shards"]),
                f"{result['duration_s']:.2f}",
                f"{result['ops']:,}",
                _throughput(entry),
                *(_latency(entry, "get", percentile_key(q)) for q in percentiles),
                _latency(entry, "get", "max"),
                _latency(entry, "set", percentile_key(percentiles[-1])),
                f"{_median(entry, 'hit_ratio', result['hit_ratio']):.4f}" if has_get else "-",
                f"{result['errors']:,}",
                f"{_median(entry, 'mb_per_sec', result['mb_per_sec']):.1f}",
                verdict_text(entry),
            )
        )
    return rows


def thresholds_table(rows: list[tuple[str, str, str, str]]) -> str:
    return tabulate(rows, headers=("threshold", "required", "measured", "verdict"), tablefmt="simple")


def comparison_table(comparison: Comparison) -> str:
    """Baseline against current, metric by metric, with the change in percent."""
    rows = []
    with_spread = not comparison.single_round
    for row in comparison.rows:
        change = row.change
        verdict = "REGRESSION" if row.regression else ""
        if row.noisy:
            verdict = f"{verdict} (noisy)".strip()
        cells = [
            row.test,
            row.metric,
            _number(row.baseline, row.metric),
            _number(row.current, row.metric),
            "n/a" if change is None else f"{change:+.1f} %",
        ]
        if with_spread:
            cells.append(" / ".join(_spread(s) for s in row.spreads))
        rows.append((*cells, verdict))
    headers = ["test", "metric", "baseline", "current", "change"]
    headers += ["spread (base / now)"] if with_spread else []
    table = tabulate(rows, headers=[*headers, "verdict"], tablefmt="simple", disable_numparse=True)
    notes = [f"only in the baseline: {t}" for t in comparison.only_in_baseline]
    notes += [f"new in this run (no baseline): {t}" for t in comparison.only_in_current]
    if comparison.noisy:
        notes.append(
            "noisy: the spread over a side's rounds (max - min, % of the median) is larger than the allowance, "
            "so the data cannot support that verdict; use more --slap-rounds or a quieter machine"
        )
    if comparison.single_round and any(row.allowance is not None for row in comparison.rows):
        notes.append(
            "each side is a single round, so the noise is unknown; --slap-rounds=N on both runs "
            "compares medians and flags verdicts the spread cannot support"
        )
    return "\n".join([table, *notes])


def _spread(spread: float | None) -> str:
    if spread is None:
        return "-"
    return "unbounded" if spread == float("inf") else f"{spread:.1f} %"


def _number(value: float | None, metric: str) -> str:
    """The same units as the thresholds table; '-' when a side has no such number."""
    return "-" if value is None else format_metric(metric.rpartition(".")[2], value)

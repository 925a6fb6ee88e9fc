"""Output formats of a session's slap runs: the terminal table and the JSON document."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from tabulate import tabulate

from .thresholds import format_metric

if TYPE_CHECKING:
    from .baseline import Comparison

HEADERS = (
    "test",
    "shards",
    "duration s",
    "ops",
    "ops/s",
    "get p50 µs",
    "get p99 µs",
    "get max µs",
    "set p99 µs",
    "hit ratio",
    "errors",
    "MB/s",
    "thresholds",
)


def _latency(entry: dict[str, Any], command: str, metric: str) -> str:
    cmd = entry["result"]["commands"].get(command)
    return f"{cmd['latency_us'][metric]:,.1f}" if cmd else "-"


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


def terminal_table(entries: list[dict[str, Any]]) -> str:
    """One row per slap run, units in the headers."""
    rows = []
    for entry in entries:
        result = entry["result"]
        has_get = "get" in result["commands"]
        rows.append(
            (
                entry["key"],
                str(result["shards"]),
                f"{result['duration_s']:.2f}",
                f"{result['ops']:,}",
                f"{result['ops_per_sec']:,.0f}",
                _latency(entry, "get", "p50"),
                _latency(entry, "get", "p99"),
                _latency(entry, "get", "max"),
                _latency(entry, "set", "p99"),
                f"{result['hit_ratio']:.4f}" if has_get else "-",
                f"{result['errors']:,}",
                f"{result['mb_per_sec']:.1f}",
                verdict_text(entry),
            )
        )
    return tabulate(
        rows,
        headers=HEADERS,
        tablefmt="simple",
        disable_numparse=True,
        colalign=("left",) + ("right",) * (len(HEADERS) - 1),
    )


def thresholds_table(rows: list[tuple[str, str, str, str]]) -> str:
    return tabulate(rows, headers=("threshold", "required", "measured", "verdict"), tablefmt="simple")


def json_document(
    entries: list[dict[str, Any]], plugin_version: str, memcached_version: str, event_loop: str
) -> dict[str, Any]:
    """The ``--slap-json`` document: one entry per slap run, keyed by test node id."""
    tests = {}
    for entry in entries:
        data = dict(entry["result"])
        data["thresholds"] = entry["thresholds"]
        data["thresholds_enforced"] = entry["enforced"]
        data["memcached_version"] = entry["memcached_version"]
        tests[entry["key"]] = data
    return {
        "plugin_version": plugin_version,
        "memcached_version": memcached_version,
        "event_loop": event_loop,
        "tests": tests,
    }


def write_json(path: str, document: dict[str, Any]) -> None:
    """Write atomically, so a reader never sees half a file."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(document, f, indent=2, sort_keys=False)
        f.write("\n")
    os.replace(tmp, path)


def comparison_table(comparison: Comparison) -> str:
    """Baseline against current, metric by metric, with the change in percent."""
    rows = []
    for row in comparison.rows:
        change = row.change
        rows.append(
            (
                row.test,
                row.metric,
                _number(row.baseline, row.metric),
                _number(row.current, row.metric),
                "n/a" if change is None else f"{change:+.1f} %",
                "REGRESSION" if row.regression else "",
            )
        )
    headers = ("test", "metric", "baseline", "current", "change", "verdict")
    table = tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True)
    notes = [f"only in the baseline: {t}" for t in comparison.only_in_baseline]
    notes += [f"new in this run (no baseline): {t}" for t in comparison.only_in_current]
    return "\n".join([table, *notes])


def _number(value: float | None, metric: str) -> str:
    """The same units as the thresholds table; '-' when a side has no such number."""
    return "-" if value is None else format_metric(metric.rpartition(".")[2], value)

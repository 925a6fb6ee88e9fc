"""Repeated rounds of one slap() call: a median and a spread per metric.

One run on a shared machine says little about noise. With ``--slap-rounds=N``
each ``slap()`` call runs its workload N times; thresholds and comparisons
use each metric's median over the rounds, and the spread (max - min, in % of
the median) tells whether a difference is larger than the noise.
"""

from __future__ import annotations

import statistics
from typing import Any

from pytest_memaslap.model.metrics import COMMAND_METRICS, PROBE_GROUP, SERVER_GROUP, SERVER_METRICS, TOTAL_METRICS
from pytest_memaslap.stats.result import SlapResult, read_metric


def metric_names(results: list[SlapResult]) -> list[str]:
    """Every metric the threshold language can name for these rounds (``ops_per_sec``, ``get.p99``)."""
    names = list(TOTAL_METRICS)
    commands = dict.fromkeys(name for r in results for name in r.commands)
    names += [f"{command}.{metric}" for command in commands for metric in COMMAND_METRICS]
    if any(r.probe for r in results):  # (the measurement probe's, where there was one)
        names += [f"{PROBE_GROUP}.{metric}" for metric in COMMAND_METRICS]
    if any(r.raw.server for r in results):  # (the servers' figures, where they were sampled)
        names += [f"{SERVER_GROUP}.{metric}" for metric in SERVER_METRICS]
    return names


def representative(results: list[SlapResult]) -> int:
    """The index of the median round by throughput: the round whose details (timeline, per-shard) are shown."""
    order = sorted(range(len(results)), key=lambda i: results[i].ops_per_sec)
    return order[(len(order) - 1) // 2]


def with_rounds(rounds: list[SlapResult]) -> SlapResult:
    """The median round by throughput, with every round attached (``result.rounds``)."""
    result = rounds[representative(rounds)]
    result.rounds = list(rounds) if len(rounds) > 1 else []
    return result


def spread_pct(values: list[float]) -> float:
    """max - min in % of the median; 0 for one value, inf when the median is 0 and the values differ."""
    if len(values) < 2:
        return 0.0
    median = statistics.median(values)
    width = max(values) - min(values)
    if median == 0:
        return 0.0 if width == 0 else float("inf")
    return width / abs(median) * 100.0


def summarize(results: list[SlapResult]) -> dict[str, Any]:
    """The ``rounds`` section of a test's JSON entry: per metric its median, spread and every round's value."""
    median: dict[str, float] = {}
    spread: dict[str, float | None] = {}
    values: dict[str, list[float]] = {}
    for name in metric_names(results):
        measured = [read_metric(r, name) for r in results]
        if any(v != v for v in measured):  # a command some round never sent
            continue
        median[name] = round(statistics.median(measured), 6)
        width = spread_pct(measured)
        spread[name] = None if width == float("inf") else round(width, 3)
        values[name] = [round(v, 6) for v in measured]
    return {"count": len(results), "median": median, "spread_pct": spread, "values": values}

"""Threshold expressions: parse ``"get.p99 < 2ms"``, evaluate on a result, explain the verdict.

A threshold is ``METRIC OP VALUE``. METRIC is a total metric (``ops_per_sec``)
or a command's (``get.p99``); OP is one of ``< <= > >= ==``; VALUE carries the
metric's unit: a time (``us``, ``ms``, ``s``) for latencies and durations, an
optional count suffix (``k``, ``M``, ``G``) for counts and rates, an optional
``%`` for ratios. Parsed once, at collection, so a typo fails early.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pytest_memaslap.model.workload import COMMANDS
from pytest_memaslap.stats.result import LATENCY_METRICS, SlapResult

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "<": operator.lt,
    ">": operator.gt,
}

COUNT_METRICS = ("ops", "errors", "hits", "misses")
RATE_METRICS = ("ops_per_sec", "mb_per_sec")
RATIO_METRICS = ("hit_ratio", "error_ratio")
TOTAL_ONLY = ("duration",)
COMMAND_METRICS = COUNT_METRICS + RATE_METRICS + RATIO_METRICS + LATENCY_METRICS
TOTAL_METRICS = ("ops", "errors") + RATE_METRICS + RATIO_METRICS + LATENCY_METRICS + TOTAL_ONLY

_TIME_UNITS = {"us": 1.0, "µs": 1.0, "ms": 1000.0, "s": 1_000_000.0}
_COUNT_UNITS = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9}
_EXPR = re.compile(
    r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(<=|>=|==|<|>)\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(\S*)\s*$"
)


class ThresholdError(ValueError):
    """A threshold expression is malformed; the message says what is allowed."""


def _allowed_metrics() -> str:
    return (
        f"total metrics: {', '.join(TOTAL_METRICS)}; per command ({', '.join(COMMANDS)}): "
        f"COMMAND.{{{', '.join(COMMAND_METRICS)}}}"
    )


@dataclass(frozen=True)
class Threshold:
    """One parsed expression; ``required`` is in the metric's base unit (µs, s, count, ratio)."""

    expr: str
    command: str | None
    metric: str
    op: str
    required: float

    @classmethod
    def parse(cls, expr: Any) -> Threshold:
        if not isinstance(expr, str):
            raise ThresholdError(f"threshold {expr!r}: expected a string such as 'get.p99 < 2ms'")
        match = _EXPR.match(expr)
        if not match:
            raise ThresholdError(
                f"threshold {expr!r}: expected 'METRIC OP VALUE' such as 'ops_per_sec >= 50k' or "
                f"'get.p99 < 2ms'; operators: {' '.join(sorted(OPERATORS, key=len))}"
            )
        name, op, number, unit = match.groups()
        command, _, metric = name.rpartition(".")
        if command:
            if command not in COMMANDS:
                raise ThresholdError(f"threshold {expr!r}: unknown command {command!r}; allowed: {', '.join(COMMANDS)}")
            if metric not in COMMAND_METRICS:
                raise ThresholdError(f"threshold {expr!r}: unknown metric {metric!r}; {_allowed_metrics()}")
        elif metric not in TOTAL_METRICS:
            raise ThresholdError(f"threshold {expr!r}: unknown metric {metric!r}; {_allowed_metrics()}")
        value = float(number) * _unit_factor(expr, metric, unit)
        return cls(expr.strip(), command or None, metric, op, value)

    @property
    def name(self) -> str:
        return f"{self.command}.{self.metric}" if self.command else self.metric

    def measure(self, result: SlapResult) -> float:
        """The metric on ``result``; with several rounds, its median over them."""
        return result.median(self.name)

    def evaluate(self, result: SlapResult) -> Verdict:
        measured = self.measure(result)
        passed = measured == measured and OPERATORS[self.op](measured, self.required)
        return Verdict(self, measured, passed)

    def format_value(self, value: float) -> str:
        return format_metric(self.metric, value)


@dataclass(frozen=True)
class Verdict:
    threshold: Threshold
    measured: float
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        measured = None if self.measured != self.measured else round(self.measured, 6)
        return {"expr": self.threshold.expr, "measured": measured, "passed": self.passed}

    def row(self) -> tuple[str, str, str, str]:
        t = self.threshold
        measured = "not measured" if self.measured != self.measured else t.format_value(self.measured)
        return (t.expr, f"{t.op} {t.format_value(t.required)}", measured, "pass" if self.passed else "FAIL")


def _unit_factor(expr: str, metric: str, unit: str) -> float:
    if metric in LATENCY_METRICS or metric == "duration":
        if unit not in _TIME_UNITS:
            raise ThresholdError(f"threshold {expr!r}: {metric} needs a time unit: us, ms or s (e.g. '2ms')")
        return _TIME_UNITS[unit] / (1_000_000.0 if metric == "duration" else 1.0)
    if metric in RATIO_METRICS:
        if unit not in ("", "%"):
            raise ThresholdError(f"threshold {expr!r}: {metric} is a ratio: write 0.99 or 99%")
        return 0.01 if unit == "%" else 1.0
    if unit not in _COUNT_UNITS:
        raise ThresholdError(f"threshold {expr!r}: {metric} takes a plain number or a suffix k, M or G")
    return _COUNT_UNITS[unit]


def format_metric(metric: str, value: float) -> str:
    """A number with the unit a reader expects for ``metric``."""
    if metric in LATENCY_METRICS:
        if value >= 1_000_000:
            return f"{value / 1_000_000:.3g} s"
        return f"{value / 1000:.3g} ms" if value >= 1000 else f"{value:.3g} µs"
    if metric == "duration":
        return f"{value:.3g} s"
    if metric in RATIO_METRICS:
        return f"{value:.4g}"
    if metric == "ops_per_sec":
        return f"{value:,.0f} ops/s"
    if metric == "mb_per_sec":
        return f"{value:.3g} MB/s"
    return f"{value:,.0f}"


def parse_all(exprs: tuple[Any, ...], commands: tuple[str, ...] | None = None) -> tuple[Threshold, ...]:
    """Parse a mark's expressions; with ``commands``, refuse metrics of commands the mix never sends."""
    parsed = tuple(Threshold.parse(e) for e in exprs)
    if commands is not None:
        for t in parsed:
            if t.command is not None and t.command not in commands:
                raise ThresholdError(
                    f"threshold {t.expr!r}: the workload sends no {t.command!r} requests "
                    f"(commands: {', '.join(commands)})"
                )
    return parsed


def evaluate_all(thresholds: tuple[Threshold, ...], result: SlapResult) -> list[Verdict]:
    return [t.evaluate(result) for t in thresholds]

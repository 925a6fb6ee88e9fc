"""Threshold expressions: parse ``"get.p99 < 2ms"``, evaluate on a result, explain the verdict.

A threshold is ``METRIC OP VALUE``. METRIC is a total metric (``ops_per_sec``)
or a command's (``get.p99``); OP is one of ``< <= > >= ==``; VALUE carries the
metric's unit: a time (``us``, ``ms``, ``s``) for latencies and durations, an
optional count suffix (``k``, ``M``, ``G``) for counts and rates, an optional
``%`` for ratios. Parsed once, at collection, so a typo fails early.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pytest_memaslap.model.metrics import (
    COUNT_METRICS,
    ENGINE_GROUPS,
    PROBE_GROUP,
    RATIO_METRICS,
    SERVER_GROUP,
    MetricError,
    format_metric,
    is_latency,
    parse_metric,
)
from pytest_memaslap.model.units import COUNT_UNITS, UnitError, count_factor, duration_factor

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "<": operator.lt,
    ">": operator.gt,
}

_EXPR = re.compile(
    r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(<=|>=|==|<|>)\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(\S*)\s*$"
)


class ThresholdError(ValueError):
    """A threshold expression is malformed; the message says what is allowed."""


class MetricSource(Protocol):
    """What a threshold is measured on: a result that reads a metric by name (its median over rounds)."""

    def median(self, metric: str) -> float: ...


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
        if not math.isfinite(float(number)):
            raise ThresholdError(f"threshold {expr!r}: {number} is too large for a number a run can measure")
        try:
            parsed = parse_metric(name)
            value = float(number) * _unit_factor(expr, parsed.metric, unit)
        except (MetricError, UnitError) as exc:
            raise ThresholdError(f"threshold {expr!r}: {exc}") from None
        impossible = _impossible(parsed.metric, value)
        if impossible:
            raise ThresholdError(f"threshold {expr!r}: {impossible}")
        return cls(expr.strip(), parsed.command, parsed.metric, op, value)

    @property
    def name(self) -> str:
        return f"{self.command}.{self.metric}" if self.command else self.metric

    def measure(self, result: MetricSource) -> float:
        """The metric on ``result``; with several rounds, its median over them."""
        return result.median(self.name)

    def evaluate(self, result: MetricSource) -> Verdict:
        """The rule on the point estimate alone (a capacity search's step; thresholds add an interval)."""
        measured = self.measure(result)
        return Verdict(self, measured, PASS if self.holds(measured) else FAIL)

    def holds(self, value: float) -> bool:
        """Whether the rule holds for ``value`` (never for NaN: a metric not measured)."""
        return value == value and OPERATORS[self.op](value, self.required)

    def format_value(self, value: float) -> str:
        return format_metric(self.metric, value)


PASS, FAIL, INCONCLUSIVE = "pass", "FAIL", "inconclusive"


@dataclass(frozen=True)
class Verdict:
    """A threshold's verdict: ``pass``, ``FAIL`` or ``inconclusive``, with the interval it was judged on.

    ``interval`` (low, high, in the metric's base unit) is None where the
    number has no sampling error in this run (a count: ``method`` "exact") or
    none could be made; ``why`` says why a verdict is inconclusive.
    """

    threshold: Threshold
    measured: float
    state: str
    interval: tuple[float, float] | None = None
    method: str = ""
    why: str = ""

    @property
    def passed(self) -> bool:
        return self.state == PASS

    @property
    def failed(self) -> bool:
        return self.state == FAIL

    @property
    def inconclusive(self) -> bool:
        return self.state == INCONCLUSIVE

    @property
    def text(self) -> str:
        """``pass``, ``FAIL``, ``inconclusive (load generator limited)``."""
        return f"{self.state} ({self.why})" if self.why else self.state

    def to_dict(self) -> dict[str, Any]:
        measured = None if self.measured != self.measured else round(self.measured, 6)
        interval = None
        if self.interval is not None:
            low, high = (round(end, 6) if math.isfinite(end) else None for end in self.interval)  # (null: unbounded)
            interval = {"low": low, "high": high, "method": self.method}
        return {
            "expr": self.threshold.expr,
            "measured": measured,
            "interval": interval,
            "verdict": self.state,
            "why": self.why or None,
            "passed": self.passed,
        }

    def row(self) -> tuple[str, str, str, str, str]:
        """The thresholds table's cells: rule, required, measured, its 95 % interval, verdict."""
        t = self.threshold
        measured = "not measured" if self.measured != self.measured else t.format_value(self.measured)
        if self.interval is None:
            interval = "exact" if self.method == "exact" else "-"
        elif not math.isfinite(self.interval[1]):
            interval = f"at least {t.format_value(self.interval[0])}"
        else:
            interval = f"{t.format_value(self.interval[0])} .. {t.format_value(self.interval[1])}"
        return (t.expr, f"{t.op} {t.format_value(t.required)}", measured, interval, self.text)


def _impossible(metric: str, value: float) -> str | None:
    """Why no run can have ``value`` for ``metric`` (None: it can): a rule that could never be met is a typo."""
    if value < 0:
        return f"{metric} is never negative"
    if metric in RATIO_METRICS and value > 1:
        return f"{metric} is a ratio from 0 to 1 (0% to 100%)"
    if metric in COUNT_METRICS and value != int(value):
        return f"{metric} is a count: a whole number"
    return None


def _unit_factor(expr: str, metric: str, unit: str) -> float:
    """What one unit of the written value is in the metric's base unit (µs for latencies, s, count, ratio)."""
    if is_latency(metric) or metric == "duration":
        if not unit:
            raise ThresholdError(f"threshold {expr!r}: {metric} needs a time unit: us, ms or s (e.g. '2ms')")
        seconds = duration_factor(unit, metric)
        return seconds if metric == "duration" else seconds * 1e6
    if metric in RATIO_METRICS:
        if unit not in ("", "%"):
            raise ThresholdError(f"threshold {expr!r}: {metric} is a ratio: write 0.99 or 99%")
        return 0.01 if unit == "%" else 1.0
    if unit not in COUNT_UNITS and unit != "m":  # (m gets its own hint: use M)
        raise ThresholdError(f"threshold {expr!r}: {metric} takes a plain number or a suffix k, M or G")
    return count_factor(unit, metric)


def parse_all(exprs: tuple[Any, ...], commands: tuple[str, ...] | None = None) -> tuple[Threshold, ...]:
    """Parse a mark's expressions; with ``commands``, refuse metrics of commands the mix never sends."""
    parsed = tuple(Threshold.parse(e) for e in exprs)
    if commands is not None:
        for t in parsed:
            groups = (*ENGINE_GROUPS, SERVER_GROUP, PROBE_GROUP)
            if t.command is not None and t.command not in commands and t.command not in groups:
                raise ThresholdError(
                    f"threshold {t.expr!r}: the workload sends no {t.command!r} requests "
                    f"(commands: {', '.join(commands)})"
                )
    return parsed

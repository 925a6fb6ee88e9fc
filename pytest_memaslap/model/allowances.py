"""Allowances: how far a metric may move the wrong way before a comparison calls it a regression.

``--slap-compare-fail="ops_per_sec:-5%,get.p99:+10%"``: the sign says the
bad direction and must match the metric (throughput-like metrics drop,
latencies and counts rise). One parser for the plugin's option and the
``slap-compare`` command.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pytest_memaslap.model.metrics import HIGHER_IS_BETTER, is_latency
from pytest_memaslap.model.workload import COMMANDS

_ALLOWANCE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*:\s*([-+]?[0-9]*\.?[0-9]+)\s*%\s*$")


class AllowanceError(ValueError):
    """A malformed allowance; the message says what is allowed."""


def higher_is_better(metric: str) -> bool:
    """Whether a rise of ``metric`` (``ops_per_sec``, ``get.hit_ratio``) is good."""
    return metric.rpartition(".")[2] in HIGHER_IS_BETTER


@dataclass(frozen=True)
class Allowance:
    """How far a metric may move the wrong way before it is a regression, in percent."""

    metric: str
    percent: float

    @property
    def higher_is_better(self) -> bool:
        return higher_is_better(self.metric)


def parse_allowances(text: str, option: str = "--slap-compare-fail") -> tuple[Allowance, ...]:
    """``"ops_per_sec:-5%,get.p99:+10%"``: the sign says the bad direction and must match the metric."""
    allowances = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = _ALLOWANCE.match(part)
        if not match:
            raise AllowanceError(f"{option}: {part!r} is not METRIC:PERCENT%, e.g. 'ops_per_sec:-5%' or 'get.p99:+10%'")
        metric, number = match.group(1), float(match.group(2))
        command, _, name = metric.rpartition(".")
        known = name in HIGHER_IS_BETTER or is_latency(name) or name in ("errors", "hits", "misses")
        if (command and command not in COMMANDS) or not known:
            raise AllowanceError(f"{option}: unknown metric {metric!r}")
        allowance = Allowance(metric, number)
        if number and (number < 0) != allowance.higher_is_better:
            direction = "drop (use -N%)" if allowance.higher_is_better else "rise (use +N%)"
            raise AllowanceError(f"{option}: {part!r}: a regression of {metric} is a {direction}")
        allowances.append(allowance)
    return tuple(allowances)

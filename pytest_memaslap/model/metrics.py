"""Metric names: what thresholds, comparisons, rounds and the summary can name, parsed in one place.

A metric is a total (``ops_per_sec``, ``p99``) or a command's (``get.p99``).
Latencies are microseconds: ``p50 p90 p99 p999 max mean stdev`` and any
percentile ``pNN[.N...]`` (``p75``, ``p99.9``, ``p99.99``; ``p999`` is the
older spelling of ``p99.9``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pytest_memaslap.model.workload import COMMANDS

LATENCY_METRICS = ("p50", "p90", "p99", "p999", "max", "mean", "stdev")  # the keys of every ``latency_us``
COUNT_METRICS = ("ops", "errors", "hits", "misses")
RATE_METRICS = ("ops_per_sec", "mb_per_sec")
RATIO_METRICS = ("hit_ratio", "error_ratio")
TOTAL_ONLY = ("duration", "capacity")  # capacity: ops/s, the result of a slap_capacity search
COMMAND_METRICS = COUNT_METRICS + RATE_METRICS + RATIO_METRICS + LATENCY_METRICS
TOTAL_METRICS = ("ops", "errors") + RATE_METRICS + RATIO_METRICS + LATENCY_METRICS + TOTAL_ONLY
HIGHER_IS_BETTER = ("ops_per_sec", "hit_ratio", "mb_per_sec", "ops", "capacity")
# the load generator's own lateness (µs): its event loop's (ready callbacks kept waiting) and an open loop's sends
ENGINE_GROUPS = ("loop_lag", "send_lag")
ENGINE_METRICS = ("p50", "p99", "p999", "max")
# the measurement probe's gets (probe_rate=): latencies and counts, as a command's
PROBE_GROUP = "probe"
# what the server did in the measured phase, from its sampled stats (--slap-server-stats)
SERVER_GROUP = "server"
SERVER_METRICS = (
    "cpu_us_per_op",
    "cpu_user_us_per_op",
    "cpu_system_us_per_op",
    "evictions",
    "hit_ratio",
    "ops_per_sec",
    "proxy_errors",  # a twemproxy's (--memcached-proxy-stats): its errors of every kind, and its ejections
    "proxy_ejects",
)
DEFAULT_PERCENTILES = (50.0, 99.0)  # the summary's latency columns unless --slap-percentiles says otherwise

_PERCENTILE = re.compile(r"^p([0-9]+(?:\.[0-9]+)?)$")


class MetricError(ValueError):
    """A metric name that is not one; the message lists what is allowed."""


def percentile_of(metric: str) -> float | None:
    """The percentile a latency metric names (``p99.9`` -> 99.9, ``p999`` -> 99.9); None if it names none."""
    if metric == "p999":
        return 99.9
    match = _PERCENTILE.match(metric)
    if match is None:
        return None
    q = float(match.group(1))
    return q if 0 < q < 100 else None


def is_latency(metric: str) -> bool:
    return metric in LATENCY_METRICS or percentile_of(metric) is not None


def percentile_key(q: float) -> str:
    """The ``latency_us`` key of a percentile: today's names where they exist (``p999``), else ``p99.99``."""
    legacy = {50.0: "p50", 90.0: "p90", 99.0: "p99", 99.9: "p999"}
    return legacy.get(q, f"p{q:g}")


def percentile_label(q: float) -> str:
    """How a column or a line shows a percentile: ``p99.9``."""
    return f"p{q:g}"


def allowed() -> str:
    return (
        f"total metrics: {', '.join(TOTAL_METRICS)}; per command ({', '.join(COMMANDS)}): "
        f"COMMAND.{{{', '.join(COMMAND_METRICS)}}}; any percentile pNN[.N] (p75, p99.9, p99.99); "
        f"the load generator's lateness: {{{', '.join(ENGINE_GROUPS)}}}.{{{', '.join(ENGINE_METRICS)}}}; "
        f"the server's own: server.{{{', '.join(SERVER_METRICS)}}}; the probe's (probe_rate=): "
        f"probe.{{{', '.join(COMMAND_METRICS)}}}"
    )


@dataclass(frozen=True)
class Metric:
    """A parsed metric name: ``get.p99.9`` is command ``get``, metric ``p99.9``, percentile 99.9."""

    command: str | None
    metric: str

    @property
    def name(self) -> str:
        return f"{self.command}.{self.metric}" if self.command else self.metric

    @property
    def percentile(self) -> float | None:
        return percentile_of(self.metric)

    @property
    def latency(self) -> bool:
        return is_latency(self.metric)


def parse_metric(name: str) -> Metric:
    """``ops_per_sec``, ``p99.9``, ``get.p99``, ``set.hit_ratio``; raises MetricError naming what is allowed."""
    head, dot, rest = name.partition(".")
    if dot and head == PROBE_GROUP:
        if rest in COMMAND_METRICS or percentile_of(rest) is not None:
            return Metric(head, rest)
        raise MetricError(f"unknown metric {rest!r} of the probe; allowed: {', '.join(COMMAND_METRICS)}, any pNN[.N]")
    if dot and head == SERVER_GROUP:
        if rest in SERVER_METRICS:
            return Metric(head, rest)
        raise MetricError(f"unknown metric {rest!r} of the server; allowed: {', '.join(SERVER_METRICS)}")
    if dot and head in ENGINE_GROUPS:
        if rest in ENGINE_METRICS or percentile_of(rest) is not None:
            return Metric(head, rest)
        raise MetricError(f"unknown metric {rest!r} of {head!r}; allowed: {', '.join(ENGINE_METRICS)}, any pNN[.N]")
    if dot and head in COMMANDS:
        if rest in COMMAND_METRICS or percentile_of(rest) is not None:
            return Metric(head, rest)
        raise MetricError(f"unknown metric {rest!r} of {head!r}; {allowed()}")
    if name in TOTAL_METRICS or percentile_of(name) is not None:
        return Metric(None, name)
    if dot and head.isidentifier() and percentile_of(head) is None and head not in TOTAL_METRICS:
        raise MetricError(f"unknown command {head!r}; allowed: {', '.join(COMMANDS)}")
    raise MetricError(f"unknown metric {name!r}; {allowed()}")


def parse_percentiles(text: str, name: str = "--slap-percentiles") -> tuple[float, ...]:
    """``"50,99,99.9"`` -> (50.0, 99.0, 99.9): the percentiles a summary shows, in rising order."""
    values = []
    for part in filter(None, (p.strip() for p in str(text).split(","))):
        try:
            q = float(part.removeprefix("p"))
        except ValueError:
            q = -1.0
        if not 0 < q < 100:
            raise MetricError(f"{name}={text!r}: {part!r} is not a percentile; give numbers above 0 and below 100")
        values.append(q)
    if not values:
        raise MetricError(f"{name}={text!r}: give at least one percentile, e.g. 50,99,99.9")
    return tuple(sorted(set(values)))


def format_metric(metric: str, value: float) -> str:
    """A number with the unit a reader expects for ``metric`` (latencies are µs)."""
    if is_latency(metric):
        if value >= 1_000_000:
            return f"{value / 1_000_000:.3g} s"
        return f"{value / 1000:.3g} ms" if value >= 1000 else f"{value:.3g} µs"
    if metric == "duration":
        return f"{value:.3g} s"
    if metric in RATIO_METRICS:
        return f"{value:.4g}"
    if metric in ("ops_per_sec", "capacity"):
        return f"{value:,.0f} ops/s"
    if metric == "mb_per_sec":
        return f"{value:.3g} MB/s"
    return f"{value:,.0f}"

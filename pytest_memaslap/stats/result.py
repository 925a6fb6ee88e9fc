"""SlapResult: what ``slap()`` returns, a readable view over merged shard statistics.

Counts are plain numbers, rates are per second of the measured window, and
latencies are microseconds (``p50``, ``p90``, ``p99``, ``p999``, ``max``,
``mean``, ``stdev``), read from histograms with at most 0.4 % error.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from pytest_memaslap.model.metrics import (
    ENGINE_GROUPS,
    LATENCY_METRICS,
    PROBE_GROUP,
    SERVER_GROUP,
    parse_metric,
    percentile_label,
    percentile_of,
)
from pytest_memaslap.model.workload import COMMANDS, Workload
from pytest_memaslap.stats.histogram import Histogram
from pytest_memaslap.stats.results import CommandStats, PhaseStats, ShardResult
from pytest_memaslap.stats.server import metric as server_metric

SATURATED_CPU_PCT = 90.0  # a load process this busy is likely the bottleneck
SATURATED_LAG_US = 1000.0  # ... as is one whose loop leaves ready work waiting this long (p99)
FLAG_MIN_S = 0.5  # a run shorter than this is not judged by its CPU share (a few scheduler ticks)
FLAG_MIN_SAMPLES = 50  # ... nor by a lateness p99 of fewer samples than this (it would be their max)
STALL_US = 100_000.0  # ... and one that stalled once this long (its loop, or its machine): rare, but in the tails
RATE_KEPT = 0.98  # an open loop that achieved less than this share of its target rate fell behind


@dataclass(frozen=True)
class CommandResult:
    """The measured numbers of one command (``result.get``, ``result.set``, ...)."""

    name: str
    ops: int
    hits: int
    misses: int
    errors: int
    bytes_sent: int
    bytes_received: int
    duration: float
    latency_us: dict[str, float]
    spectrum_us: list[tuple[float, float]]  # (percentile, µs), p10 to max: the latency-percentile curve
    histogram: Histogram = field(repr=False, compare=False, default_factory=Histogram)
    abandoned: dict[str, int] = field(default_factory=dict)  # unanswered requests by cause (also in ``errors``)

    @classmethod
    def from_stats(cls, name: str, stats: CommandStats, duration: float) -> CommandResult:
        """The command's numbers; where the engine tracked the exact min and max, no percentile (a bucket's
        midpoint) is reported beyond them."""
        latency_us = stats.latency.summary_us()
        spectrum = stats.latency.spectrum_us()
        if stats.max_ns:  # exact, where the engine tracked them (the histogram's are its buckets' midpoints)
            low, high = round(stats.min_ns / 1000.0, 3), round(stats.max_ns / 1000.0, 3)
            latency_us = {k: v if k in ("mean", "stdev") else min(max(v, low), high) for k, v in latency_us.items()}
            latency_us["min"], latency_us["max"] = low, high
            spectrum = [(q, min(max(us, low), high)) for q, us in spectrum[:-1]] + [(100.0, high)]
        return cls(
            name,
            stats.ops,
            stats.hits,
            stats.misses,
            stats.errors,
            stats.bytes_sent,
            stats.bytes_received,
            duration,
            latency_us,
            spectrum,
            stats.latency,
            dict(stats.abandoned),
        )

    def percentile(self, q: float) -> float:
        """Any percentile (0 < q < 100) in µs, from the histogram (within the exact min and max, where known)."""
        value = round(self.histogram.percentile(q) / 1000.0, 3)
        if "min" in self.latency_us:
            value = min(max(value, self.latency_us["min"]), self.latency_us["max"])
        return value

    def latency_with(self, percentiles: tuple[float, ...]) -> dict[str, float]:
        """``latency_us`` plus each asked percentile under its own name, ``p`` and the number (``p99.9``,
        ``p99.99``), beside the fixed keys (``p999`` stays: it is the same number)."""
        extra = {percentile_label(q): self.percentile(q) for q in percentiles}
        return {**self.latency_us, **{k: v for k, v in extra.items() if k not in self.latency_us}}

    @property
    def ops_per_sec(self) -> float:
        return self.ops / self.duration if self.duration > 0 else 0.0

    @property
    def hit_ratio(self) -> float:
        """hits / (hits + misses); 0.0 when the command had no answered request."""
        answered = self.hits + self.misses
        return self.hits / answered if answered else 0.0

    @property
    def error_ratio(self) -> float:
        """errors / requests sent (answered or abandoned)."""
        requests = self.ops + sum(self.abandoned.values())
        return self.errors / requests if requests else 0.0

    @property
    def mb_per_sec(self) -> float:
        return (self.bytes_sent + self.bytes_received) / 1e6 / self.duration if self.duration > 0 else 0.0

    def __getattr__(self, name: str) -> float:
        if name == "latency_us" or name.startswith("__"):
            raise AttributeError(name)
        if name in LATENCY_METRICS:
            return self.latency_us[name]
        raise AttributeError(f"CommandResult has no attribute {name!r}")

    def to_dict(self, percentiles: tuple[float, ...] = ()) -> dict[str, Any]:
        return {
            "ops": self.ops,
            "ops_per_sec": round(self.ops_per_sec, 1),
            "hits": self.hits,
            "misses": self.misses,
            "errors": self.errors,
            "abandoned": dict(self.abandoned),
            "hit_ratio": round(self.hit_ratio, 6),
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "latency_us": self.latency_with(percentiles),
            "spectrum_us": [list(point) for point in self.spectrum_us],
        }


@dataclass(frozen=True)
class TimelinePoint:
    """One second of the measured phase."""

    second: int
    ops: int
    errors: int
    p99_us: float
    target: float | None = None  # an open loop's requests/s asked for in this second


@dataclass
class SlapResult:
    """The result of one ``slap()`` call, merged over all its shards."""

    workload: Workload
    raw: ShardResult
    server_version: str = ""
    commands: dict[str, CommandResult] = field(init=False)
    total: CommandResult = field(init=False)
    probe: CommandResult | None = field(init=False)
    # with --slap-rounds=N: every round, this one (the median round by throughput) among them
    rounds: list[SlapResult] = field(default_factory=list, repr=False)
    # with --slap-versus*: B's result (its median round, carrying every round), run interleaved with this one
    versus: SlapResult | None = field(default=None, repr=False)
    _validity: dict[str, Any] | None = field(default=None, init=False, repr=False, compare=False)
    _independence: dict[str, Any] | None = field(default=None, init=False, repr=False, compare=False)
    _independence_made: bool = field(default=False, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        measured = self.raw.measured
        duration = measured.elapsed_s
        self.commands = {
            name: CommandResult.from_stats(name, measured.commands[name], duration)
            for name in self.workload.measured_commands()
            if name in measured.commands
        }
        self.total = CommandResult.from_stats("total", _sum_commands(measured), duration)
        probed = self.raw.phases.get("probe")
        probe_get = probed.commands.get("get") if probed is not None else None
        # the measurement probe's gets (probe_rate=), apart from the load's; None without a probe
        self.probe = CommandResult.from_stats("probe", probe_get, probed.elapsed_s) if probed and probe_get else None

    # -- the documented attributes -------------------------------------------
    @property
    def ops(self) -> int:
        """Requests sent and answered in the measured phase (an error reply is an answer; ``abandoned`` are not)."""
        return self.total.ops

    @property
    def duration(self) -> float:
        """Seconds of the measured phase, from its first request to its last reply."""
        return self.raw.measured.elapsed_s

    @property
    def ops_per_sec(self) -> float:
        return self.total.ops_per_sec

    @property
    def errors(self) -> int:
        """Error replies and requests never answered (those also in ``abandoned``)."""
        return self.total.errors

    @property
    def abandoned(self) -> dict[str, int]:
        """Requests never answered in the measured phase, by cause: ``connection_lost``, ``timeout``, ``run_ended``."""
        return self.total.abandoned

    @property
    def error_ratio(self) -> float:
        return self.total.error_ratio

    @property
    def hit_ratio(self) -> float:
        """Get hits / get lookups; 0.0 when the mix has no gets."""
        get = self.commands.get("get")
        return get.hit_ratio if get else 0.0

    @property
    def mb_per_sec(self) -> float:
        return self.total.mb_per_sec

    @property
    def shards(self) -> int:
        return self.raw.shards

    @property
    def unmeasured_ops(self) -> dict[str, int]:
        """Requests sent outside the measured phase, by phase."""
        return {name: phase.requests for name, phase in self.raw.phases.items() if name != "measured"}

    @property
    def requests_sent(self) -> int:
        return self.raw.requests_sent

    @property
    def reconnects(self) -> int:
        """Connections reopened after the server dropped them (``reconnect=True``)."""
        return self.raw.reconnects

    @property
    def capacity(self) -> float:
        """A ``slap_capacity`` search's answer: the highest rate (ops/s) that kept the SLO; NaN without a search."""
        return float(self.raw.capacity["ops_per_sec"]) if self.raw.capacity else float("nan")

    @property
    def capacity_steps(self) -> list[dict[str, Any]]:
        """Every step of a capacity search: rate, achieved, passed, p50/p99/p99.9 (µs), errors."""
        return list(self.raw.capacity["steps"]) if self.raw.capacity else []

    def validity(self) -> dict[str, Any]:
        """The run's own checks (``stats.validity``): its rate, its arrivals, its steadiness, its percentiles'
        95 % intervals; made once (the summary, the verdict, the JSON all read them)."""
        if self._validity is None:
            self._validity = self._checked()
        return self._validity

    def independence(self) -> dict[str, Any] | None:
        """Whether successive latencies were independent (``stats.validity.independence_check``); made once."""
        if not self._independence_made:
            from pytest_memaslap.stats.validity import independence_check

            self._independence = independence_check(self.raw.latency_runs)
            self._independence_made = True
        return self._independence

    def effective_share(self) -> float:
        """The share of the run's latencies that count as independent samples in a percentile's interval."""
        check = self.independence()
        return float(check["effective_share"]) if check is not None else 1.0

    def _checked(self) -> dict[str, Any]:
        from pytest_memaslap.stats.validity import validity
        from pytest_memaslap.stats.verdicts import metric_interval

        # whole seconds of the measured time asked for (an open loop's drain after it has no target to keep)
        asked = self.workload.duration if self.workload.duration is not None else self.duration
        whole = [p for p in self.timeline if p.second < int(min(self.duration, asked))]
        intervals = {}
        for name in ("p50", "p99", "p999"):
            interval = metric_interval(self, name)
            intervals[name] = None if interval is None else [round(interval.low, 1), round(interval.high, 1)]
        return validity(
            [p.ops for p in whole],
            [p.target for p in whole],
            [p.p99_us for p in whole],
            self.raw.departures,
            self.workload.arrivals,
            intervals,
            self.independence(),
        )

    def server_stats(self) -> dict[str, Any] | None:
        """The servers' side of the call (``stats.server``), with the accounting check on the call's requests."""
        from pytest_memaslap.stats.server import accounting

        section = self.raw.server
        if not section:
            return None
        checked = accounting(section, self.requests_sent, section.get("why_not_exact"))
        return {**section, "accounting": checked}

    def limited_by_load_generator(self) -> str | None:
        """Why the load process, not the server, may have set these numbers (None: nothing says so).

        Its CPU near a full core (closed loop only: an open loop's pacer keeps
        the CPU busy on purpose, to send within a millisecond of schedule, and so do a
        capacity search's and a trace replay's), its
        event loop late by a millisecond or more at p99, the machine itself
        stalling as long (the hiccup meter's sleeps, late by 1 ms or more
        at p99), a single stall of its loop or machine of 100 ms or more, or an
        open loop short of its target rate by more than 2 %.
        """
        raw, reasons = self.raw, []
        open_loop = self.workload.open_loop or raw.capacity is not None or self.workload.trace is not None
        long_enough = self.duration >= FLAG_MIN_S  # (a CPU share or a p99 of a few samples says nothing)
        if raw.cpu_pct >= SATURATED_CPU_PCT and not open_loop and long_enough:
            reasons.append(f"its CPU at {raw.cpu_pct:.0f} %")
        lateness = (
            (raw.loop_lag, "its event loop late by {:.1f} ms at p99"),
            (raw.hiccups, "its machine {:.1f} ms late at p99 to wake a sleeping thread"),
            (raw.send_lag, "its sends late by {:.1f} ms at p99"),
        )
        for histogram, reason in lateness:  # (an empty histogram's p99 is 0: not measured, not late)
            p99_us = histogram.percentile(99.0) / 1000.0
            if p99_us >= SATURATED_LAG_US and histogram.total >= FLAG_MIN_SAMPLES:
                reasons.append(reason.format(p99_us / 1000.0))
        stalls = ((raw.loop_lag, "its event loop"), (raw.hiccups, "its machine"))
        for histogram, who in stalls:  # a single long stop that p99 does not see, with its length
            longest_us = histogram.max() / 1000.0
            if longest_us >= STALL_US and histogram.percentile(99.0) / 1000.0 < SATURATED_LAG_US:
                reasons.append(f"{who} stalled once for {longest_us / 1000.0:,.0f} ms")
        target = self.target_rate()
        if target and self.ops_per_sec < target * RATE_KEPT:
            reasons.append(f"{self.ops_per_sec:,.0f} of the {target:,.0f} requests/s asked for")
        return ", ".join(reasons) or None

    def cpu_per_request(self) -> dict[str, float] | None:
        """The load processes' CPU time per request of the measured phase (µs): what one request cost us.

        An open loop's pacer spins on purpose between sends (to send within a
        millisecond of schedule); that spin, its idle ticks priced at the
        median CPU time of one (one in 64 is timed), is left out of ``user`` and ``system``
        (in their proportion) and shown apart as ``pacer_spin``, so the cost
        per request means the same in both loops. None where it was not
        measured: a capacity search's CPU spans all its steps, not the one it reports.
        """
        requests = self.raw.measured.requests if "measured" in self.raw.phases else 0
        user, system = self.raw.cpu_user_s, self.raw.cpu_system_s
        if not requests or not (user or system):
            return None
        spin = min(self.raw.pacer_spin_s, user + system)
        keep = 1.0 - spin / (user + system)
        cost = {"user": round(user * keep / requests * 1e6, 3), "system": round(system * keep / requests * 1e6, 3)}
        cost["total"] = round(cost["user"] + cost["system"], 3)
        if self.workload.open_loop:
            cost["pacer_spin"] = round(spin / requests * 1e6, 3)
        return cost

    def engine(self) -> dict[str, Any]:
        """The JSON's ``engine`` block: how busy the load process was (is it the bottleneck?)."""
        hiccups = self.raw.hiccups
        return {
            "implementation": self.raw.implementation,  # the hot path: "compiled" or its twin, "python"
            "event_loop": self.raw.event_loop,
            "cpu_pct": round(self.raw.cpu_pct, 1),
            "cpu_us_per_request": self.cpu_per_request(),
            "loop_lag_us": _ranks_us(self.raw.loop_lag, ("p50", "p99", "max")),
            "limited_by_load_generator": self.limited_by_load_generator(),
            # the engine's own periodic work: the longest it kept the loop from replies, and how long it
            # usually did (µs); each block's CPU time, so a stall of the machine inside one counts too
            "periodic_max_us": {name: round(blocks.max_ns / 1000.0, 1) for name, blocks in self.raw.periodic.items()},
            "periodic_us": {
                name: {"count": blocks.durations.total, **_ranks_us(blocks.durations, ("p50", "p99", "p999"))}
                for name, blocks in self.raw.periodic.items()
            },
            # the machine's own stalls: how late a thread doing nothing woke from its sleeps (None: not measured)
            "machine_hiccups_us": (
                {"count": hiccups.total, **_ranks_us(hiccups, ("p50", "p99", "p999", "max"))} if hiccups.total else None
            ),
        }

    def target_rate(self) -> float | None:
        """An open loop's requests/s asked for over the run (stages: their mean); None for a closed loop."""
        profile = self.workload.rate_profile()
        if profile is None:
            return None
        if self.workload.stages:
            return profile.mean_rate(0.0, profile.duration_s)
        return self.workload.rate

    def rate(self) -> dict[str, Any] | None:
        """Open loop: the target rate beside the achieved one, and how far the sender fell behind."""
        target = self.target_rate()
        if target is None:
            return None
        return {
            "target": round(target, 1),
            "achieved": round(self.ops_per_sec, 1),
            "arrivals": self.workload.arrivals,
            "send_lag_max_ms": round(self.raw.send_lag_max_s * 1000, 3),
            "send_lag_us": self.send_lag_us(),
        }

    def send_lag_us(self) -> dict[str, float]:
        """Open loop: how late the sends left, against their schedule (p50, p99, p99.9, max; µs)."""
        return _ranks_us(self.raw.send_lag, ("p50", "p99", "p999", "max"))

    @property
    def timeline(self) -> list[TimelinePoint]:
        profile = self.workload.rate_profile()
        points = []
        for i, second in enumerate(self.raw.measured.timeline):
            p99 = round(Histogram.from_sparse(second.latency).percentile(99.0) / 1000.0, 3)
            target = round(profile.mean_rate(i, i + 1), 1) if profile is not None else None
            points.append(TimelinePoint(i, second.ops, second.errors, p99, target))
        return points

    def stages(self) -> list[dict[str, Any]] | None:
        """A staged run, stage by stage: its target rates, what it achieved, its latencies (None: not staged).

        Built from the per-second timeline: a second straddling two stages
        counts in the one that holds its middle (give stages whole seconds).
        """
        profile = self.workload.rate_profile()
        if profile is None or not self.workload.stages:
            return None
        out = []
        for number, (start, end, from_rate, to_rate) in enumerate(profile.segments(), start=1):
            window = self._window(start, end)
            out.append(
                {
                    "stage": number,
                    "duration_s": round(end - start, 6),
                    "target_from": from_rate,
                    "target_to": to_rate,
                    "target": round(profile.mean_rate(start, end), 1),
                    "ops": window["ops"],
                    "achieved": window["ops_per_sec"],
                    **{k: v for k, v in window.items() if k not in ("ops", "ops_per_sec")},
                }
            )
        return out

    def connection_steps(self) -> list[dict[str, Any]] | None:
        """Connection steps, step by step: connections running, throughput, latencies (None: no steps).

        From the per-second timeline, as ``stages``: give steps whole seconds.
        """
        workload = self.workload
        if not workload.connection_steps:
            return None
        out = []
        for step in range(workload.step_count()):
            start = step * workload.step_duration
            window = self._window(start, start + workload.step_duration)
            out.append({"step": step + 1, "connections": workload.active_connections(step), **window})
        return out

    def _window(self, start: float, end: float) -> dict[str, Any]:
        """The seconds of the timeline whose middle falls in [start, end): ops, ops/s, errors, p50/p99/p99.9."""
        seconds = [s for i, s in enumerate(self.raw.measured.timeline) if start <= i + 0.5 < end]
        latency = Histogram()
        for second in seconds:
            latency.merge(Histogram.from_sparse(second.latency))
        ops = sum(s.ops for s in seconds)

        def us(q: float) -> float:
            return round(latency.percentile(q) / 1000.0, 3) if latency.total else 0.0

        return {
            "ops": ops,
            "ops_per_sec": round(ops / (end - start), 1),
            "errors": sum(s.errors for s in seconds),
            "p50_us": us(50.0),
            "p99_us": us(99.0),
            "p999_us": us(99.9),
        }

    def median(self, metric: str) -> float:
        """``metric`` (``ops_per_sec``, ``p99``, ``get.p99``) as thresholds see it: the median over the rounds."""
        if len(self.rounds) > 1:
            return statistics.median(read_metric(r, metric) for r in self.rounds)
        return read_metric(self, metric)

    def __getattr__(self, name: str) -> Any:
        """``result.get`` / ``result.set`` / ``result.delete`` and total latencies (``result.p99``)."""
        if name in ("commands", "total", "rounds", "versus") or name.startswith("__"):
            raise AttributeError(name)
        if name in LATENCY_METRICS:
            return self.total.latency_us[name]
        if name in COMMANDS:
            if name in self.commands:
                return self.commands[name]
            raise AttributeError(
                f"this run sent no {name!r} requests; commands measured: {', '.join(self.commands) or 'none'}"
            )
        raise AttributeError(f"SlapResult has no attribute {name!r}")

    def to_dict(self, percentiles: tuple[float, ...] = ()) -> dict[str, Any]:
        """The JSON form documented in docs/json.md (one test entry); ``percentiles`` adds latency keys."""
        return {
            "workload": self.workload.to_dict(),
            "shards": self.shards,
            "duration_s": round(self.duration, 6),
            "ops": self.ops,
            "ops_per_sec": round(self.ops_per_sec, 1),
            "errors": self.errors,
            "abandoned": dict(self.abandoned),
            "hit_ratio": round(self.hit_ratio, 6),
            "mb_per_sec": round(self.mb_per_sec, 3),
            "unmeasured_ops": self.unmeasured_ops,
            "requests_sent": self.requests_sent,
            "reconnects": {"count": self.reconnects, "gap_s": round(self.raw.reconnect_gap_s, 6)},
            "rate": self.rate(),
            "engine": self.engine(),
            "capacity": self.raw.capacity,
            "replay": self.raw.replay,
            "server": self.server_stats(),
            "probe": self.probe.to_dict(percentiles) if self.probe is not None else None,
            "validity": self.validity(),
            "verify": _checks(self.raw.verify, ("checked", "mismatches", "keys")) if self.workload.verify else None,
            "expire": _expiry(self.raw.verify) if self.workload.expire else None,
            "latency_us": self.total.latency_with(percentiles),
            "spectrum_us": [list(point) for point in self.total.spectrum_us],
            "commands": {name: cmd.to_dict(percentiles) for name, cmd in self.commands.items()},
            "stages": self.stages(),
            "connection_steps": self.connection_steps(),
            "timeline": [
                {"second": p.second, "ops": p.ops, "errors": p.errors, "p99_us": p.p99_us, "target": p.target}
                for p in self.timeline
            ],
        }


def _checks(data: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    return {name: data.get(name, [] if name.endswith("keys") else 0) for name in names}


def _expiry(data: dict[str, Any]) -> dict[str, Any]:
    """Gets of keys past their TTL: how many, how many still returned a value (errors), and some such keys."""
    checked = _checks(data, ("expired_checked", "expired_returned", "expired_keys"))
    return {
        "checked": checked["expired_checked"],
        "returned": checked["expired_returned"],
        "keys": checked["expired_keys"],
    }


def read_metric(result: SlapResult, name: str) -> float:
    """``ops_per_sec``, ``p99``, ``get.p99.9`` of one result in base units; NaN when the command was not sent."""
    metric = parse_metric(name)
    if metric.command == SERVER_GROUP:  # the server's own figures (NaN when it was not sampled)
        return server_metric(result.raw.server, metric.metric)
    if metric.command in ENGINE_GROUPS:  # the load generator's own lateness, in µs
        lag = result.raw.loop_lag if metric.command == "loop_lag" else result.raw.send_lag
        if not lag.total:
            return 0.0
        q = metric.percentile
        return (lag.max() if q is None else lag.percentile(q)) / 1000.0
    source: Any = result
    if metric.command:
        source = result.probe if metric.command == PROBE_GROUP else result.commands.get(metric.command)
        if source is None:
            return float("nan")
    q = metric.percentile
    if q is not None and metric.metric not in LATENCY_METRICS:
        return float((source if metric.command else result.total).percentile(q))
    return float(getattr(source, metric.metric))


def _sum_commands(phase: PhaseStats) -> CommandStats:
    total = CommandStats()
    for stats in phase.commands.values():
        total.merge(stats)
    return total


def _ranks_us(durations: Histogram, names: tuple[str, ...]) -> dict[str, float]:
    """Named ranks of a histogram of durations (``p50``, ``p99``, ``p999``, ``max``) in µs; 0.0 when it is empty."""
    ranks = {name: percentile_of(name) for name in names}  # (``max`` names no percentile)
    return {
        name: round((durations.max() if q is None else durations.percentile(q)) / 1e3, 1) for name, q in ranks.items()
    }

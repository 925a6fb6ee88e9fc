"""Mergeable load statistics: per-command counters, a per-second timeline, a shard's phases.

Pure numbers: no pytest, no I/O, no clock. Every type here merges exactly:
merging the results of two shards gives the numbers one shard would have
produced had it recorded both sets of samples, because histograms are bucket
counts (never averages) and counters are sums.
"""

from __future__ import annotations

import array
import math
from bisect import bisect_left
from collections.abc import Iterable
from copy import deepcopy
from dataclasses import dataclass, field
from itertools import accumulate
from operator import add
from typing import Any

from pytest_memaslap.stats.histogram import Histogram, bucket_value


@dataclass
class CommandStats:
    """Counters and latency histogram of one command (get, set, ...) in one phase.

    For a get, hits/misses are found/not found; for a set, stored/not stored;
    for a delete, deleted/not found. ``ops`` are answered requests (the
    latency histogram holds exactly those). ``errors`` are error replies and
    requests the server never answered; the latter are also in ``abandoned``,
    by cause (``connection_lost``, ``timeout``, ``run_ended``).
    """

    ops: int = 0
    hits: int = 0
    misses: int = 0
    errors: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    latency: Histogram = field(default_factory=Histogram)
    abandoned: dict[str, int] = field(default_factory=dict)
    min_ns: int = 0  # the exact shortest and longest latency (the histogram's are its buckets' midpoints); 0: none
    max_ns: int = 0

    @property
    def requests(self) -> int:
        """Every request sent: answered or abandoned."""
        return self.ops + sum(self.abandoned.values())

    def merge(self, other: CommandStats) -> None:
        if other.ops:
            self.min_ns = min(self.min_ns, other.min_ns) if self.ops else other.min_ns
            self.max_ns = max(self.max_ns, other.max_ns)
        self.ops += other.ops
        self.hits += other.hits
        self.misses += other.misses
        self.errors += other.errors
        self.bytes_sent += other.bytes_sent
        self.bytes_received += other.bytes_received
        self.latency.merge(other.latency)
        for cause, count in other.abandoned.items():
            self.abandoned[cause] = self.abandoned.get(cause, 0) + count


@dataclass
class Second:
    """One second of a phase's timeline: ops and errors completed, and their latencies.

    The latency histogram is kept as the run of buckets its latencies occupy:
    bucket ``offset + i`` holds ``counts[i]`` (4 bytes a bucket, zeros inside
    the run included). A long run keeps one per second, so it must stay
    small, and the recorder closes a second by copying one slice of its
    histogram, which is what keeps the close short.
    """

    ops: int = 0
    errors: int = 0
    offset: int = 0
    counts: array.array[int] = field(default_factory=lambda: array.array("I"))

    @classmethod
    def of(cls, ops: int, errors: int, latency: dict[int, int]) -> Second:
        if not latency:
            return cls(ops, errors)
        low, high = min(latency), max(latency) + 1
        return cls(ops, errors, low, array.array("I", (latency.get(i, 0) for i in range(low, high))))

    @property
    def latency(self) -> dict[int, int]:
        """The occupied buckets: {bucket index: count}."""
        return {self.offset + i: count for i, count in enumerate(self.counts) if count}

    def merge(self, other: Second) -> None:
        """Add another second's (or shard's) counts, in place and with C-level loops over the two runs.

        Live progress adds one second a second on the load's event loop, so
        this must stay short: about 20 µs for a run of 1,000 buckets.
        """
        self.ops += other.ops
        self.errors += other.errors
        if not other.counts:
            return
        if not self.counts:
            self.offset, self.counts = other.offset, array.array("I", other.counts)
            return
        low = min(self.offset, other.offset)
        end = self.offset + len(self.counts)
        high = max(end, other.offset + len(other.counts))
        if self.offset > low:
            self.counts = array.array("I", bytes(4 * (self.offset - low))) + self.counts
            self.offset = low
        if end < high:
            self.counts.frombytes(bytes(4 * (high - end)))
        start, stop = other.offset - low, other.offset - low + len(other.counts)
        self.counts[start:stop] = array.array("I", map(add, self.counts[start:stop], other.counts))

    def percentile(self, q: float) -> float:
        """The q-th percentile (0 < q <= 100) in nanoseconds, as ``Histogram.percentile``; 0.0 when empty."""
        running = list(accumulate(self.counts))
        if not running or not running[-1]:
            return 0.0
        rank = max(1, math.ceil(running[-1] * q / 100.0))
        return bucket_value(self.offset + bisect_left(running, rank))

    def histogram(self) -> Histogram:
        """The same counts as a dense histogram (for reports; not for the hot path)."""
        return Histogram.from_sparse(self.latency)


@dataclass
class PhaseStats:
    """What one phase (preload, warm-up or measured) did: per-command stats, timeline, time."""

    commands: dict[str, CommandStats] = field(default_factory=dict)
    timeline: list[Second] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def ops(self) -> int:
        """Answered requests."""
        return sum(c.ops for c in self.commands.values())

    @property
    def requests(self) -> int:
        """Every request sent in the phase: answered or abandoned."""
        return sum(c.requests for c in self.commands.values())

    def merge(self, other: PhaseStats) -> None:
        """Add another shard's phase; elapsed is the longest (shards run side by side)."""
        for name, cmd in other.commands.items():
            self.commands.setdefault(name, CommandStats()).merge(cmd)
        for i, second in enumerate(other.timeline):
            if i < len(self.timeline):
                self.timeline[i].merge(second)
            else:
                self.timeline.append(Second(second.ops, second.errors, second.offset, array.array("I", second.counts)))
        self.elapsed_s = max(self.elapsed_s, other.elapsed_s)


PHASES = ("preload", "warmup", "measured")  # "sync" (shard barriers) is added when shards run

# the engine's own periodic work: closing a second of the timeline (once a second), drawing a
# connection's next batch of requests (every 16 requests), the stall watchdog's check (ten times a second)
PERIODIC_WORK = ("timeline_close", "request_refill", "stall_watchdog")


@dataclass
class Blocks:
    """Each time one kind of periodic work held the event loop: how long (ns), and the exact longest.

    The distribution tells the engine's work from the machine's: a block that
    an interrupt or the hypervisor lands in is long however little the work
    was, so the longest alone says more about the machine than about the engine.
    """

    durations: Histogram = field(default_factory=Histogram)
    max_ns: int = 0

    def record(self, took_ns: int) -> None:
        self.durations.record(took_ns)
        if took_ns > self.max_ns:
            self.max_ns = took_ns

    def merge(self, other: Blocks) -> None:
        self.durations.merge(other.durations)
        self.max_ns = max(self.max_ns, other.max_ns)


@dataclass
class ShardResult:
    """Everything one shard measured, by phase (its wire form for xdist is in ``plugin.messages``)."""

    phases: dict[str, PhaseStats] = field(default_factory=lambda: {p: PhaseStats() for p in PHASES})
    shards: int = 1
    started_at: float = 0.0  # wall clock (time.time()) of the measured phase's start; the earliest when merged
    reconnects: int = 0  # connections reopened after the server dropped them (reconnect=True)
    reconnect_gap_s: float = 0.0  # wall time while one or more connections were down; merged: the longest shard's
    send_lag_max_s: float = 0.0  # open loop: how far behind its schedule the sender ever fell
    send_lag: Histogram = field(default_factory=Histogram)  # open loop: each send's lag behind its schedule (ns)
    cpu_pct: float = 0.0  # the load process's CPU share in the measured phase (100 = a core); merged: the busiest
    loop_lag: Histogram = field(default_factory=Histogram)  # how long a ready callback waited for the loop (ns)
    cpu_user_s: float = 0.0  # the load process's CPU time in the measured phase, user space; merged: the sum
    cpu_system_s: float = 0.0  # and kernel (its socket calls)
    pacer_spin_s: float = 0.0  # of that CPU, an open loop's pacer spinning on purpose between sends (estimated)
    verify: dict[str, Any] = field(default_factory=lambda: {"checked": 0, "mismatches": 0, "keys": []})
    implementation: str = ""  # the hot path that ran: "compiled" or "python" (merged: each one that ran, joined)
    event_loop: str = ""  # "uvloop" or "asyncio"
    # the engine's own periodic work, each time it held the event loop (see PERIODIC_WORK)
    periodic: dict[str, Blocks] = field(default_factory=lambda: {name: Blocks() for name in PERIODIC_WORK})
    hiccups: Histogram = field(default_factory=Histogram)  # the machine's own stalls (ns; empty: not measured)
    capacity: dict[str, Any] | None = None  # a slap_capacity search: its SLO, capacity, why it stopped, its steps
    replay: dict[str, Any] | None = None  # a trace replay: the trace, lines read, requests sent, lines skipped
    server: dict[str, Any] | None = None  # the servers' sampled stats (stats.server.server_section); one shard's
    departures: list[int] = field(default_factory=list)  # an open loop: a sample of its send times (ns); one shard's
    latency_runs: list[int] = field(default_factory=list)  # runs of 16 successive latencies (ns), a sample; one shard's

    @property
    def measured(self) -> PhaseStats:
        return self.phases["measured"]

    @property
    def requests_sent(self) -> int:
        """Every request sent in every phase (answered or abandoned): what the server's counters may have seen."""
        return sum(p.requests for p in self.phases.values())

    def merge(self, other: ShardResult) -> None:
        window = None
        if self.started_at and other.started_at:
            # shards run side by side: the merged measured window spans the earliest start to the latest end
            end = max(self.started_at + self.measured.elapsed_s, other.started_at + other.measured.elapsed_s)
            window = (min(self.started_at, other.started_at), end)
        for name, phase in other.phases.items():
            self.phases.setdefault(name, PhaseStats()).merge(phase)
        self.shards += other.shards
        self.reconnects += other.reconnects
        self.reconnect_gap_s = max(self.reconnect_gap_s, other.reconnect_gap_s)  # (shards are down side by side)
        self.send_lag_max_s = max(self.send_lag_max_s, other.send_lag_max_s)
        self.send_lag.merge(other.send_lag)
        self.cpu_pct = max(self.cpu_pct, other.cpu_pct)
        self.cpu_user_s += other.cpu_user_s
        self.cpu_system_s += other.cpu_system_s
        self.pacer_spin_s += other.pacer_spin_s
        self.loop_lag.merge(other.loop_lag)
        self.verify = _merge_checks(self.verify, other.verify)
        self.implementation = _joined(self.implementation, other.implementation)
        self.event_loop = _joined(self.event_loop, other.event_loop)
        for name, blocks in other.periodic.items():
            self.periodic.setdefault(name, Blocks()).merge(blocks)
        self.hiccups.merge(other.hiccups)
        self.capacity = self.capacity or other.capacity  # (a search runs on one shard)
        self.replay = _merge_replays(self.replay, other.replay)
        self.server = self.server or other.server  # (one shard samples the servers for all)
        self.departures = self.departures or other.departures  # (send times of one process's clock only)
        self.latency_runs = self.latency_runs or other.latency_runs  # (successive in one process only)
        if window is not None:
            self.started_at = window[0]
            self.measured.elapsed_s = window[1] - window[0]
        elif other.started_at and not self.started_at:
            self.started_at = other.started_at


def _merge_replays(a: dict[str, Any] | None, b: dict[str, Any] | None) -> dict[str, Any] | None:
    """Shards replay the same trace: their counts add up (each line is counted by one shard), passes do not."""
    if a is None or b is None:
        return a or b
    skipped = dict(a["skipped"])
    for reason, count in b["skipped"].items():
        skipped[reason] = skipped.get(reason, 0) + count
    added = {name: a[name] + b[name] for name in ("lines", "requests", "keys_untracked")}
    return {**a, **added, "passes": max(a["passes"], b["passes"]), "skipped": skipped}


def _joined(a: str, b: str) -> str:
    """Shards that ran on different hot paths (or loops) say so: ``compiled+python``."""
    return "+".join(sorted({*a.split("+"), *b.split("+")} - {""}))


def _merge_checks(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Verification counts add up; the lists of example keys are joined, ten at most."""
    merged: dict[str, Any] = {}
    for name in dict.fromkeys([*a, *b]):
        left, right = a.get(name), b.get(name)
        if isinstance(left, list) or isinstance(right, list):
            merged[name] = ((left or []) + (right or []))[:10]
        else:
            merged[name] = (left or 0) + (right or 0)
    return merged


def merge_results(results: Iterable[ShardResult]) -> ShardResult:
    """Merge shard results into one; the inputs are left untouched."""
    merged: ShardResult | None = None
    for result in results:
        copy = deepcopy(result)
        if merged is None:
            merged = copy
        else:
            merged.merge(copy)
    if merged is None:
        raise ValueError("merge_results() needs at least one shard result")
    return merged

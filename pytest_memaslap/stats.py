"""Mergeable load statistics: latency histograms, per-command counters, a timeline.

Pure numbers: no pytest, no I/O, no clock. Every type here merges exactly:
merging the results of two shards gives the numbers one shard would have
produced had it recorded both sets of samples, because histograms are bucket
counts (never averages) and counters are sums.

Latencies are recorded as integer nanoseconds into a log-linear histogram:
values below 256 ns are exact; above, every power of two is split into 128
linear sub-buckets, so a reported value (the bucket midpoint) is within 0.4 %
of the true sample.
"""

from __future__ import annotations

import array
import math
import operator
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

SUB_BITS = 7
SUB_COUNT = 1 << SUB_BITS
EXACT_LIMIT = SUB_COUNT << 1
MAX_SHIFT = 40
BUCKET_COUNT = EXACT_LIMIT + (MAX_SHIFT << SUB_BITS)
LAST_BUCKET = BUCKET_COUNT - 1

PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p999", 99.9))
SPECTRUM = (10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 99.995, 99.999, 99.9995, 99.9999)


def bucket_index(value_ns: int) -> int:
    """The bucket a latency in nanoseconds falls into (the hot path inlines this)."""
    bits = value_ns.bit_length()
    if bits <= SUB_BITS + 1:
        return value_ns if value_ns > 0 else 0
    shift = bits - SUB_BITS - 1
    index = (shift << SUB_BITS) + (value_ns >> shift)
    return index if index < BUCKET_COUNT else LAST_BUCKET


def bucket_bounds(index: int) -> tuple[int, int]:
    """The lowest and highest nanosecond value that land in bucket ``index``."""
    if index < EXACT_LIMIT:
        return index, index
    shift = (index >> SUB_BITS) - 1
    sub = index - (shift << SUB_BITS)
    return sub << shift, ((sub + 1) << shift) - 1


def bucket_value(index: int) -> float:
    """The value reported for a bucket: its midpoint, in nanoseconds."""
    low, high = bucket_bounds(index)
    return (low + high) / 2.0


class Histogram:
    """Log-linear latency histogram over nanoseconds; ``counts`` is dense and mergeable."""

    __slots__ = ("counts",)

    def __init__(self, counts: list[int] | None = None) -> None:
        self.counts = counts if counts is not None else [0] * BUCKET_COUNT

    def record(self, value_ns: int, count: int = 1) -> None:
        """Add ``count`` samples of ``value_ns`` (tests and slow paths; the engine inlines it)."""
        self.counts[bucket_index(value_ns)] += count

    def merge(self, other: Histogram) -> None:
        """Add another histogram's samples to this one."""
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]

    @property
    def total(self) -> int:
        return sum(self.counts)

    def _nonzero(self) -> Iterable[tuple[int, int]]:
        return ((i, c) for i, c in enumerate(self.counts) if c)

    def percentile(self, q: float) -> float:
        """The q-th percentile (0 < q <= 100) in nanoseconds; 0.0 when empty."""
        total = self.total
        if total == 0:
            return 0.0
        rank = max(1, math.ceil(total * q / 100.0))
        seen = 0
        for index, count in self._nonzero():
            seen += count
            if seen >= rank:
                return bucket_value(index)
        return self.max()

    def max(self) -> float:
        for index in range(BUCKET_COUNT - 1, -1, -1):
            if self.counts[index]:
                return bucket_value(index)
        return 0.0

    def mean(self) -> float:
        total = self.total
        if not total:
            return 0.0
        return sum(bucket_value(i) * c for i, c in self._nonzero()) / total

    def stdev(self) -> float:
        total = self.total
        if total < 2:
            return 0.0
        mean = self.mean()
        var = sum(c * (bucket_value(i) - mean) ** 2 for i, c in self._nonzero()) / total
        return math.sqrt(var)

    def summary_us(self) -> dict[str, float]:
        """Percentiles, max, mean and stdev in microseconds (the units users read)."""
        out = {name: round(self.percentile(q) / 1000.0, 3) for name, q in PERCENTILES}
        out["max"] = round(self.max() / 1000.0, 3)
        out["mean"] = round(self.mean() / 1000.0, 3)
        out["stdev"] = round(self.stdev() / 1000.0, 3)
        return out

    def spectrum_us(self) -> list[tuple[float, float]]:
        """(percentile, µs) from p10 to the max, HdrHistogram-style; only the tail ranks the count can resolve."""
        total = self.total
        points = [q for q in SPECTRUM if total * (100.0 - q) / 100.0 >= 1.0]
        out = [(q, round(self.percentile(q) / 1000.0, 3)) for q in points]
        return out + [(100.0, round(self.max() / 1000.0, 3))] if total else []

    def to_sparse(self) -> dict[int, int]:
        return dict(self._nonzero())

    @classmethod
    def from_sparse(cls, sparse: dict[int, int]) -> Histogram:
        hist = cls()
        for index, count in sparse.items():
            hist.counts[int(index)] += count
        return hist


@dataclass
class CommandStats:
    """Counters and latency histogram of one command (get, set, ...) in one phase.

    For a get, hits/misses are found/not found; for a set, stored/not stored;
    for a delete, deleted/not found. ``errors`` are error replies and requests
    the server never answered.
    """

    ops: int = 0
    hits: int = 0
    misses: int = 0
    errors: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    latency: Histogram = field(default_factory=Histogram)

    def merge(self, other: CommandStats) -> None:
        self.ops += other.ops
        self.hits += other.hits
        self.misses += other.misses
        self.errors += other.errors
        self.bytes_sent += other.bytes_sent
        self.bytes_received += other.bytes_received
        self.latency.merge(other.latency)


@dataclass
class Second:
    """One second of a phase's timeline: ops and errors completed, and their latencies.

    The latency histogram is kept sparse in two flat arrays (bucket index,
    count): a long run keeps one per second, so it must stay small (a few
    bytes per occupied bucket, not a dict entry each).
    """

    ops: int = 0
    errors: int = 0
    indices: array.array[int] = field(default_factory=lambda: array.array("H"))
    counts: array.array[int] = field(default_factory=lambda: array.array("L"))

    @classmethod
    def of(cls, ops: int, errors: int, latency: dict[int, int]) -> Second:
        order = sorted(latency)
        return cls(ops, errors, array.array("H", order), array.array("L", (latency[i] for i in order)))

    @property
    def latency(self) -> dict[int, int]:
        return dict(zip(self.indices, self.counts, strict=True))

    def merge(self, other: Second) -> None:
        self.ops += other.ops
        self.errors += other.errors
        latency = self.latency
        for index, count in zip(other.indices, other.counts, strict=True):
            latency[index] = latency.get(index, 0) + count
        merged = Second.of(0, 0, latency)
        self.indices, self.counts = merged.indices, merged.counts


@dataclass
class PhaseStats:
    """What one phase (preload, warm-up or measured) did: per-command stats, timeline, time."""

    commands: dict[str, CommandStats] = field(default_factory=dict)
    timeline: list[Second] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def ops(self) -> int:
        return sum(c.ops for c in self.commands.values())

    def merge(self, other: PhaseStats) -> None:
        """Add another shard's phase; elapsed is the longest (shards run side by side)."""
        for name, cmd in other.commands.items():
            self.commands.setdefault(name, CommandStats()).merge(cmd)
        for i, second in enumerate(other.timeline):
            if i < len(self.timeline):
                self.timeline[i].merge(second)
            else:
                self.timeline.append(Second.of(second.ops, second.errors, second.latency))
        self.elapsed_s = max(self.elapsed_s, other.elapsed_s)


PHASES = ("preload", "warmup", "measured")  # "sync" (shard barriers) is added when shards run


@dataclass
class ShardResult:
    """Everything one shard measured, by phase; the unit that crosses process boundaries."""

    phases: dict[str, PhaseStats] = field(default_factory=lambda: {p: PhaseStats() for p in PHASES})
    shards: int = 1
    started_at: float = 0.0  # wall clock (time.time()) of the measured phase's start; the earliest when merged
    reconnects: int = 0  # connections reopened after the server dropped them (reconnect=True)
    reconnect_gap_s: float = 0.0  # time those connections spent reconnecting, summed
    send_lag_max_s: float = 0.0  # open loop: how far behind its schedule the sender ever fell
    verify: dict[str, Any] = field(default_factory=lambda: {"checked": 0, "mismatches": 0, "keys": []})

    @property
    def measured(self) -> PhaseStats:
        return self.phases["measured"]

    @property
    def requests_sent(self) -> int:
        """Every request sent in every phase: what the server's counters must have seen."""
        return sum(p.ops for p in self.phases.values())

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
        self.reconnect_gap_s += other.reconnect_gap_s
        self.send_lag_max_s = max(self.send_lag_max_s, other.send_lag_max_s)
        self.verify = _merge_checks(self.verify, other.verify)
        if window is not None:
            self.started_at = window[0]
            self.measured.elapsed_s = window[1] - window[0]
        elif other.started_at and not self.started_at:
            self.started_at = other.started_at

    def to_dict(self) -> dict[str, Any]:
        """A lossless, JSON-safe form (sparse histograms) for transport between processes."""
        return {
            "shards": self.shards,
            "started_at": self.started_at,
            "reconnects": self.reconnects,
            "reconnect_gap_s": self.reconnect_gap_s,
            "send_lag_max_s": self.send_lag_max_s,
            "verify": dict(self.verify),
            "phases": {
                name: {
                    "elapsed_s": phase.elapsed_s,
                    "commands": {
                        cname: {
                            "ops": c.ops,
                            "hits": c.hits,
                            "misses": c.misses,
                            "errors": c.errors,
                            "bytes_sent": c.bytes_sent,
                            "bytes_received": c.bytes_received,
                            "latency": {str(k): v for k, v in c.latency.to_sparse().items()},
                        }
                        for cname, c in phase.commands.items()
                    },
                    "timeline": [
                        {"ops": s.ops, "errors": s.errors, "latency": {str(k): v for k, v in s.latency.items()}}
                        for s in phase.timeline
                    ],
                }
                for name, phase in self.phases.items()
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ShardResult:
        phases: dict[str, PhaseStats] = {}
        for name, raw in data["phases"].items():
            commands = {
                cname: CommandStats(
                    ops=c["ops"],
                    hits=c["hits"],
                    misses=c["misses"],
                    errors=c["errors"],
                    bytes_sent=c["bytes_sent"],
                    bytes_received=c["bytes_received"],
                    latency=Histogram.from_sparse({int(k): v for k, v in c["latency"].items()}),
                )
                for cname, c in raw["commands"].items()
            }
            timeline = [
                Second.of(s["ops"], s["errors"], {int(k): v for k, v in s["latency"].items()}) for s in raw["timeline"]
            ]
            phases[name] = PhaseStats(commands, timeline, raw["elapsed_s"])
        return cls(
            phases=phases,
            shards=data["shards"],
            started_at=data.get("started_at", 0.0),
            reconnects=data.get("reconnects", 0),
            reconnect_gap_s=data.get("reconnect_gap_s", 0.0),
            send_lag_max_s=data.get("send_lag_max_s", 0.0),
            verify=dict(data.get("verify") or {"checked": 0, "mismatches": 0, "keys": []}),
        )


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
        copy = ShardResult.from_dict(result.to_dict())
        if merged is None:
            merged = copy
        else:
            merged.merge(copy)
    if merged is None:
        raise ValueError("merge_results() needs at least one shard result")
    return merged


HITS, MISSES, ERRORS, SENT, RECEIVED = range(5)


class PhaseRecorder:
    """Hot path: counts the completions of one phase into flat lists; rolls a timeline each second.

    Per command there is one ``counters`` list (unused, misses, errors, bytes
    sent, bytes received) and one dense latency histogram of the current
    second; hits are not counted but derived (every reply lands in the
    histogram, so hits = replies - misses - errors), which saves the most
    common increment. The engine holds references to both and updates them inline; when
    a second closes, its histogram is folded into the phase totals and zeroed
    in place, so those references stay valid. ``finish`` builds the readable
    ``PhaseStats`` once.
    """

    __slots__ = ("names", "counters", "seconds", "totals", "timeline", "start_ns", "next_tick", "_errors_closed")

    def __init__(self, command_names: tuple[str, ...], start_ns: int) -> None:
        n = len(command_names)
        self.names = command_names
        self.counters = [[0] * 5 for _ in range(n)]
        self.seconds = [[0] * BUCKET_COUNT for _ in range(n)]
        self.totals = [[0] * BUCKET_COUNT for _ in range(n)]
        self.timeline: list[Second] = []
        self.start_ns = start_ns
        self.next_tick = start_ns + 1_000_000_000
        self._errors_closed = 0

    def record(self, cmd: int, outcome: int, latency_ns: int, sent: int, received: int) -> None:
        """One completion (slow paths and tests; the connection inlines the same steps)."""
        self.seconds[cmd][bucket_index(latency_ns)] += 1
        counters = self.counters[cmd]
        if outcome:
            counters[outcome] += 1
        counters[SENT] += sent
        counters[RECEIVED] += received

    def tick(self, now_ns: int) -> None:
        """Close every full second up to ``now_ns`` into the timeline."""
        while now_ns >= self.next_tick:
            self._close_second()
            self.next_tick += 1_000_000_000

    def _close_second(self) -> None:
        latency: dict[int, int] = {}
        ops = 0
        for cmd, second in enumerate(self.seconds):
            count = sum(second)
            if not count:
                continue
            ops += count
            for index, n in enumerate(second):
                if n:
                    latency[index] = latency.get(index, 0) + n
            self.totals[cmd] = list(map(operator.add, self.totals[cmd], second))
            second[:] = _ZEROS  # in place: the engine keeps references to this list
        errors = sum(c[ERRORS] for c in self.counters)
        self.timeline.append(Second.of(ops, errors - self._errors_closed, latency))
        self._errors_closed = errors

    def finish(self, end_ns: int) -> PhaseStats:
        """Build the phase's stats; the last partial second is kept if it saw anything."""
        self.tick(end_ns)
        if any(any(second) for second in self.seconds):
            self._close_second()
        commands: dict[str, CommandStats] = {}
        for cmd, name in enumerate(self.names):
            _, misses, errors, sent, received = self.counters[cmd]
            latency = Histogram(self.totals[cmd])
            ops = latency.total
            if not ops:
                continue
            commands[name] = CommandStats(ops, ops - misses - errors, misses, errors, sent, received, latency)
        return PhaseStats(commands, self.timeline, max(0.0, (end_ns - self.start_ns) / 1e9))


_ZEROS = [0] * BUCKET_COUNT

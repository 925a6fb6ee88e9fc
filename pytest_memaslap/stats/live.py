"""Running totals of a measured phase, per command, as live exporters read them once a second.

Pure numbers: no pytest, no I/O, no clock. A snapshot holds what one shard
counted since its measured phase began, so a reader that misses one loses
nothing: the next holds it too (Prometheus counters and histograms work this
way, and ``rate()`` turns them into per-second figures). Latencies are
counted at a fixed, short list of edges (Prometheus's ``le``), cut from the
engine's log-linear histogram: a bucket counts at an edge when the bucket
holds the edge or lies below it, so a count may include latencies up to
0.8 % above its edge.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from pytest_memaslap.stats.histogram import BUCKET_COUNT, bucket_index
from pytest_memaslap.stats.results import Second

# the edges, in microseconds: dense where memcached's latencies sit, then up to the longest plausible stall
LIVE_EDGES_US = (
    *(10, 25, 50, 75, 100, 150, 200, 300, 500, 750),
    *(1_000, 1_500, 2_000, 3_000, 5_000, 7_500, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000),
    *(1_000_000, 2_500_000, 5_000_000, 10_000_000),
)
LIVE_EDGES_NS = tuple(edge * 1_000 for edge in LIVE_EDGES_US)
# buckets [0, cut) count at an edge; the last cut takes every bucket (Prometheus's le="+Inf")
LIVE_CUTS = (*(bucket_index(edge) + 1 for edge in LIVE_EDGES_NS), BUCKET_COUNT)


@dataclass(frozen=True)
class CommandTotals:
    """One command's running totals: answered requests (``ops``), errors, outcomes, bytes and latencies."""

    ops: int = 0
    errors: int = 0  # error replies and requests never answered
    hits: int = 0
    misses: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    at_edges: tuple[int, ...] = ()  # answered requests at or below each of LIVE_EDGES_NS, then all of them
    latency_sum_ns: int = 0  # every answered request's latency, each as its bucket's midpoint

    def minus(self, earlier: CommandTotals) -> CommandTotals:
        """What was counted after ``earlier`` (the same command's totals at an earlier second)."""
        before = earlier.at_edges or (0,) * len(self.at_edges)
        edges = tuple(now - then for now, then in zip(self.at_edges, before, strict=True))
        return CommandTotals(
            self.ops - earlier.ops,
            self.errors - earlier.errors,
            self.hits - earlier.hits,
            self.misses - earlier.misses,
            self.bytes_sent - earlier.bytes_sent,
            self.bytes_received - earlier.bytes_received,
            edges,
            self.latency_sum_ns - earlier.latency_sum_ns,
        )


@dataclass
class LiveSnapshot:
    """One shard's totals of one ``slap()`` call, ``second`` seconds into its measured phase."""

    test: str  # the test's node id (and round, when --slap-rounds runs several)
    shard: int
    shards: int
    second: int
    commands: dict[str, CommandTotals] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> LiveSnapshot:
        data = json.loads(text)
        commands = {
            str(name): CommandTotals(
                int(c["ops"]),
                int(c["errors"]),
                int(c["hits"]),
                int(c["misses"]),
                int(c["bytes_sent"]),
                int(c["bytes_received"]),
                tuple(int(count) for count in c["at_edges"]),
                int(c["latency_sum_ns"]),
            )
            for name, c in data["commands"].items()
        }
        return cls(str(data["test"]), int(data["shard"]), int(data["shards"]), int(data["second"]), commands)


Totals = Callable[[], dict[str, CommandTotals]]  # the running totals, read when called (a few µs a command)
OnSecond = Callable[[int, Second, Totals], None]  # (seconds done, the second that closed, its phase's totals)
# a preload's second closed: (seconds into the preload, sets answered so far, sets it will send, errors so far)
OnPreload = Callable[[int, int, int, int], None]


class LiveFeed:
    """An ``OnSecond`` that reads a call's totals each second and hands them on as a snapshot."""

    def __init__(self, sink: Callable[[LiveSnapshot], None], test: str, shard: int = 0, shards: int = 1) -> None:
        self.sink, self.test, self.shard, self.shards = sink, test, shard, shards

    def __call__(self, done: int, second: Second, totals: Totals) -> None:
        self.sink(LiveSnapshot(self.test, self.shard, self.shards, done, totals()))


def every_second(*sinks: OnSecond | None) -> OnSecond | None:
    """One ``OnSecond`` calling each sink given (None when there is none)."""
    present = [sink for sink in sinks if sink is not None]
    if len(present) < 2:
        return present[0] if present else None

    def both(done: int, second: Second, totals: Totals) -> None:
        for sink in present:
            sink(done, second, totals)

    return both

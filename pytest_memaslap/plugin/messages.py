"""The one message that crosses processes: a shard's report of one slap() call, and its wire form.

An xdist worker attaches ``ShardReport.to_wire()`` to its test report; the
controller decodes it with ``ShardReport.from_wire``. A single process never
calls either: it hands the ``ShardReport`` object itself to the aggregator.

The wire form is JSON-safe (report attributes may be written as JSON by other
plugins) and versioned: a worker running another release of the plugin (a
remote execnet gateway with an older install) is refused with one clear
error instead of being misread. Histograms, one per command and phase plus
one per second of the timeline, travel as one zlib-compressed stream of
varints (bucket index delta, count), base64-encoded: a second of a busy
timeline costs tens of bytes instead of a JSON object of buckets.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from pytest_memaslap.model.allowances import Allowance
from pytest_memaslap.model.thresholds import Threshold, parse_all
from pytest_memaslap.model.workload import Workload
from pytest_memaslap.stats.histogram import BUCKET_COUNT, Histogram
from pytest_memaslap.stats.results import Blocks, CommandStats, PhaseStats, Second, ShardResult

WIRE_VERSION = 8
COUNTERS = ("ops", "hits", "misses", "errors", "bytes_sent", "bytes_received", "min_ns", "max_ns")


class WireError(ValueError):
    """A shard report that this release of the plugin cannot read."""


@dataclass(frozen=True)
class ShardReport:
    """What one shard did in one slap() call: every round's result, and how the call ended."""

    nodeid: str
    call: int  # 1 for the test's first slap() call, 2 for its second, ...
    shard_index: int
    shard_count: int
    workload: Workload
    thresholds: tuple[Threshold, ...]  # judged once, on the merged result, by the reporting process
    rounds: tuple[ShardResult, ...]
    memcached_version: str
    enforced: bool
    interrupted: bool = False
    error: str | None = None  # the call failed; ``rounds`` hold what it did until then
    strict: bool = False  # --slap-inconclusive=fail
    allowances: tuple[Allowance, ...] = ()  # --slap-compare-fail: what judges B against A
    versus: VersusReport | None = None  # --slap-versus*: B's rounds, paired with ``rounds`` by number
    validity_fails: bool = False  # --slap-validity=fail: a failed validity check fails the test
    version: ClassVar[int] = WIRE_VERSION

    @property
    def key(self) -> str:
        """The call's name in the summary: the node id, ``nodeid#2`` for a second call."""
        return self.nodeid if self.call == 1 else f"{self.nodeid}#{self.call}"

    def to_wire(self) -> dict[str, Any]:
        """The JSON-safe form an xdist worker sends."""
        return {
            "version": WIRE_VERSION,
            "nodeid": self.nodeid,
            "call": self.call,
            "shard": [self.shard_index, self.shard_count],
            "workload": self.workload.to_dict(),
            "thresholds": [t.expr for t in self.thresholds],
            "rounds": [encode_result(r) for r in self.rounds],
            "memcached_version": self.memcached_version,
            "enforced": self.enforced,
            "interrupted": self.interrupted,
            "error": self.error,
            "strict": self.strict,
            "allowances": [[a.metric, a.percent] for a in self.allowances],
            "versus": None if self.versus is None else self.versus.to_wire(),
            "validity_fails": self.validity_fails,
        }

    @classmethod
    def from_wire(cls, data: Any) -> ShardReport:
        """Read a worker's report; raises WireError naming what does not fit."""
        version = data.get("version") if isinstance(data, dict) else None
        if version != WIRE_VERSION:
            raise WireError(
                f"a shard report of wire version {version!r} reached a controller that reads version "
                f"{WIRE_VERSION}: install the same pytest-memaslap release on every xdist worker"
            )
        try:
            index, count = data["shard"]
            workload = Workload.from_args(data["workload"])
            return cls(
                nodeid=str(data["nodeid"]),
                call=int(data["call"]),
                shard_index=int(index),
                shard_count=int(count),
                workload=workload,
                thresholds=parse_all(tuple(data["thresholds"]), workload.measured_commands()),
                rounds=tuple(decode_result(r) for r in data["rounds"]),
                memcached_version=str(data["memcached_version"]),
                enforced=bool(data["enforced"]),
                interrupted=bool(data["interrupted"]),
                error=data["error"],
                strict=bool(data["strict"]),
                allowances=tuple(Allowance(str(m), float(p)) for m, p in data["allowances"]),
                versus=None if data["versus"] is None else VersusReport.from_wire(data["versus"]),
                validity_fails=bool(data["validity_fails"]),
            )
        except (KeyError, TypeError, ValueError, zlib.error) as exc:  # (bad marks and thresholds too)
            raise WireError(f"a malformed shard report ({type(exc).__name__}: {exc})") from None


@dataclass(frozen=True)
class VersusReport:
    """One shard's B side of an interleaved A/B call: B's server, each pair's order, B's rounds."""

    address: str
    version: str
    order: tuple[str, ...]  # "AB" or "BA" per pair, the same on every shard
    rounds: tuple[ShardResult, ...]

    def to_wire(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "version": self.version,
            "order": list(self.order),
            "rounds": [encode_result(r) for r in self.rounds],
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> VersusReport:
        return cls(
            str(data["address"]),
            str(data["version"]),
            tuple(str(o) for o in data["order"]),
            tuple(decode_result(r) for r in data["rounds"]),
        )


def encode_result(result: ShardResult) -> dict[str, Any]:
    """A shard result's compact wire form: counters as lists, every histogram in one packed stream."""
    stream = bytearray()
    _pack(stream, result.loop_lag.to_sparse())
    _pack(stream, result.send_lag.to_sparse())
    _pack(stream, result.hiccups.to_sparse())
    for name in sorted(result.periodic):  # (in the order of the names: a dict's order may not survive the wire)
        _pack(stream, result.periodic[name].durations.to_sparse())
    phases = {}
    for name, phase in result.phases.items():
        for stats in phase.commands.values():
            _pack(stream, stats.latency.to_sparse())
        for second in phase.timeline:
            _pack(stream, second.latency)
        phases[name] = {
            "elapsed_s": phase.elapsed_s,
            "commands": {
                cmd: [*(getattr(stats, c) for c in COUNTERS), dict(stats.abandoned)]
                for cmd, stats in phase.commands.items()
            },
            "seconds": [[second.ops, second.errors] for second in phase.timeline],
        }
    return {
        "shards": result.shards,
        "started_at": result.started_at,
        "reconnects": result.reconnects,
        "reconnect_gap_s": result.reconnect_gap_s,
        "send_lag_max_s": result.send_lag_max_s,
        "cpu_pct": result.cpu_pct,
        "cpu_user_s": result.cpu_user_s,
        "cpu_system_s": result.cpu_system_s,
        "pacer_spin_s": result.pacer_spin_s,
        "implementation": result.implementation,
        "event_loop": result.event_loop,
        "periodic_max_ns": {name: blocks.max_ns for name, blocks in result.periodic.items()},
        "capacity": result.capacity,
        "replay": result.replay,
        "server": result.server,
        "departures": result.departures,
        "latency_runs": result.latency_runs,
        "verify": dict(result.verify),
        "phases": phases,
        "histograms": base64.b64encode(zlib.compress(bytes(stream), 6)).decode("ascii"),
    }


def decode_result(data: dict[str, Any]) -> ShardResult:
    """The inverse of ``encode_result``: the same numbers, bucket for bucket."""
    histograms = _unpack(zlib.decompress(base64.b64decode(data["histograms"])))
    loop_lag = Histogram.from_sparse(next(histograms))
    send_lag = Histogram.from_sparse(next(histograms))
    hiccups = Histogram.from_sparse(next(histograms))
    periodic = {
        str(name): Blocks(Histogram.from_sparse(next(histograms)), int(data["periodic_max_ns"][name]))
        for name in sorted(data["periodic_max_ns"])
    }
    phases: dict[str, PhaseStats] = {}
    for name, raw in data["phases"].items():
        commands = {
            cmd: CommandStats(
                **dict(zip(COUNTERS, counters[:-1], strict=True)),
                latency=Histogram.from_sparse(next(histograms)),
                abandoned={str(cause): int(count) for cause, count in counters[-1].items()},
            )
            for cmd, counters in raw["commands"].items()
        }
        timeline = [Second.of(ops, errors, next(histograms)) for ops, errors in raw["seconds"]]
        phases[name] = PhaseStats(commands, timeline, raw["elapsed_s"])
    if next(histograms, None) is not None:
        raise ValueError("more histograms than the phases name")
    return ShardResult(
        phases=phases,
        shards=data["shards"],
        started_at=data["started_at"],
        reconnects=data["reconnects"],
        reconnect_gap_s=data["reconnect_gap_s"],
        send_lag_max_s=data["send_lag_max_s"],
        cpu_pct=data["cpu_pct"],
        cpu_user_s=data["cpu_user_s"],
        cpu_system_s=data["cpu_system_s"],
        pacer_spin_s=data["pacer_spin_s"],
        loop_lag=loop_lag,
        send_lag=send_lag,
        verify=dict(data["verify"]),
        implementation=data["implementation"],
        event_loop=data["event_loop"],
        periodic=periodic,
        hiccups=hiccups,
        capacity=data["capacity"],
        replay=data["replay"],
        server=data["server"],
        departures=[int(t) for t in data["departures"]],
        latency_runs=[int(t) for t in data["latency_runs"]],
    )


def _pack(stream: bytearray, sparse: dict[int, int]) -> None:
    """Append one histogram: its number of occupied buckets, then (index delta, count) pairs, all varints."""
    _varint(stream, len(sparse))
    previous = 0
    for index in sorted(sparse):
        _varint(stream, index - previous)
        _varint(stream, sparse[index])
        previous = index


def _unpack(data: bytes) -> Iterator[dict[int, int]]:
    """The histograms of a packed stream, one sparse dict each, in order."""
    pos = 0
    end = len(data)

    def varint() -> int:
        nonlocal pos
        value = shift = 0
        while True:
            if pos >= end:
                raise ValueError("the histogram stream ends inside a number")
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7

    while pos < end:
        index = 0
        sparse: dict[int, int] = {}
        for _ in range(varint()):
            index += varint()
            if index >= BUCKET_COUNT:
                raise ValueError(f"bucket {index} is past the histogram's last ({BUCKET_COUNT - 1})")
            sparse[index] = varint()
        yield sparse


def _varint(stream: bytearray, value: int) -> None:
    while value >= 0x80:
        stream.append((value & 0x7F) | 0x80)
        value >>= 7
    stream.append(value)

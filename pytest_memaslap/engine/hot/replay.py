"""Hot path: a shard's share of a cache trace, as requests with their intended times and connections.

Each trace key (and each of its ``amplify`` copies) is hashed once (BLAKE2b,
8 bytes): the hash picks the shard and, within it, the connection, so the
same key always goes to one connection of one shard (its requests keep
their order, and shards share nothing), and names the memcached key
(``<prefix><16 hex digits>``, padded with ``x`` to the recorded key size).
The reader is a generator pulled as time advances: a shard holds at most
one second of its own requests (timed traces, to spread them within their
second), never the trace.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from hashlib import blake2b
from typing import Any

from pytest_memaslap.model import trace as traces
from pytest_memaslap.model.shard_plan import ShardPlan
from pytest_memaslap.model.workload import MAX_KEY_SIZE, Workload
from pytest_memaslap.protocol.codecs import Codec
from pytest_memaslap.protocol.replies import CasStep

READ_STEP = 32  # a timed trace's requests read between two chances for the pacer to stop reading
MAX_VALUE = (1 << 20) - 1024  # memcached's default item_size_max (1 MiB) less a key and the item's header
MAX_TTL_S = 30 * 24 * 3600  # memcached reads a larger TTL as a clock time: longer ones are capped to this
HASHES_KEPT = 1_000_000  # trace keys whose hash is kept (the table starts over past it)
MAX_TRACKED_KEYS = 2_000_000  # keys a shard remembers writing, for --slap-cleanup (past it, it warns)
_DIGITS = memoryview(b"1234567890" * (MAX_VALUE // 10 + 1))  # values: digits, so a trace's incr/decr work
_STORES = {"set", "add", "replace", "append", "prepend", "cas"}

Request = tuple[int, bytes, Any]
Scheduled = tuple[float, int, Request]  # (intended time, s from the start; connection; the request)


class TraceQueue:
    """One connection's requests as the replay makes them due: the connection takes exactly those (paced)."""

    __slots__ = ("requests", "written", "untracked")

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.written: set[bytes] = set()  # keys this connection stored (cleanup deletes them)
        self.untracked = 0  # stores past MAX_TRACKED_KEYS, not remembered

    def batch(self, count: int) -> list[Request]:
        taken, self.requests = self.requests[:count], self.requests[count:]
        return taken

    def fresh_keys(self) -> list[bytes]:
        """The keys this connection stored (what --slap-cleanup deletes)."""
        return list(self.written)


class ReplayFeed:
    """A shard's share of the trace, in time order: ``schedule()`` yields (intended s, connection, request)."""

    def __init__(
        self,
        workload: Workload,
        plan: ShardPlan,
        codec: Codec,
        prefix: str,
        queues: list[TraceQueue],
        followups: list[list[tuple[int, bytes]]],
    ) -> None:
        assert workload.trace is not None, "a replay without a trace"
        self.trace = traces.inspect(workload.trace)
        self.workload, self.plan, self.codec = workload, plan, codec
        self.prefix = prefix.encode()
        self.queues, self.followups = queues, followups
        self.slots = {name: i for i, name in enumerate(traces.REPLAYED_OPS)}
        self.rng = plan.rng(workload, "replay")
        self.skipped: Counter[str] = Counter()  # lines (or their requests) not replayed, by reason
        self.lines = 0  # lines read, of every shard
        self.passes = 0  # times the trace was begun (loop=True: more than once)
        self.requests = 0  # this shard's requests scheduled
        self.tracked = 0
        self._labels: dict[int, bytes] = {}
        # trace key -> [this shard's?, its connection, hash in hex, key size of the get kept, that get request]
        self._hashes: dict[str, list[Any]] = {}

    # -- the schedule -----------------------------------------------------------
    def schedule(self) -> Iterator[Scheduled | None]:
        """Every request of this shard, with its intended time: as recorded (scaled by ``speed``), or at ``rate``.

        ``None`` now and then says "read on, nothing is ready yet" (a second of
        a timed trace is spread only once it is all read): the pacer reads
        ahead within a time budget per tick, and never blocks its loop for a
        whole second's worth of lines.
        """
        limit = self.plan.ops(self.workload)
        timed = self.trace.timed and self.workload.rate is None
        stream = self._recorded() if timed else self._rated()
        for item in stream:
            if item is None:
                yield None
                continue
            if limit is not None and self.requests >= limit:
                return
            self.requests += 1
            yield item

    @property
    def lookahead_s(self) -> float:
        """How far ahead of the clock the pacer keeps requests ready: two of the trace's seconds (a second is
        ready once the next begins), or 0.2 s at a steady rate."""
        if self.trace.timed and self.workload.rate is None:
            return 2.0 / self.workload.speed
        return 0.2

    def _recorded(self) -> Iterator[Scheduled | None]:
        """As recorded: each second's requests spread within it (Poisson: sorted uniform instants; uniform:
        evenly), the clock divided by ``speed``; a loop starts one second after the trace's last."""
        speed = self.workload.speed
        poisson = self.workload.arrivals == "poisson"
        offset = 0.0  # where this pass starts, in trace seconds
        while True:
            first: float | None = None
            last = 0.0
            second: list[tuple[int, Request]] = []
            current = 0.0
            for stamp, connection, request in self._requests():
                if first is None:
                    first = stamp
                if stamp != current and second:
                    yield from self._spread(second, offset + current - first, speed, poisson)
                    second = []
                current = last = stamp
                second.append((connection, request))
                if not len(second) % READ_STEP:
                    yield None
            if second and first is not None:
                yield from self._spread(second, offset + current - first, speed, poisson)
            if not self.workload.loop or first is None:
                return
            offset += last - first + 1.0

    def _spread(
        self, second: list[tuple[int, Request]], start: float, speed: float, poisson: bool
    ) -> Iterator[Scheduled]:
        count = len(second)
        if poisson:  # given n arrivals in a second, a Poisson process puts them at n sorted uniform instants
            instants = sorted(self.rng.random() for _ in range(count))
        else:
            instants = [(k + 0.5) / count for k in range(count)]
        for (connection, request), instant in zip(second, instants, strict=True):
            yield (start + instant) / speed, connection, request

    def _rated(self) -> Iterator[Scheduled]:
        """At ``rate`` (over all shards; this shard's share of it), Poisson or uniform gaps; the trace's clock,
        if any, is not used."""
        rate = self.workload.rate
        assert rate is not None, "an untimed trace without a rate"
        mean_gap = self.plan.count / rate
        poisson = self.workload.arrivals == "poisson"
        expovariate = self.rng.expovariate
        now = 0.0
        while True:
            empty = True
            for _, connection, request in self._requests():
                empty = False
                now += expovariate(1.0) * mean_gap if poisson else mean_gap
                yield now, connection, request
            if not self.workload.loop or empty:
                return

    # -- lines to requests ----------------------------------------------------------
    def _requests(self) -> Iterator[tuple[float, int, Request]]:
        """One pass over the trace: this shard's requests, each with its line's time (0 without a clock).

        Hot path: every line of the trace passes here on every shard. A
        key's hash is computed once and kept (traces reuse keys heavily),
        in a table cleared when it reaches ``HASHES_KEPT`` names.
        """
        self.passes += 1
        first_pass = self.passes == 1
        parse, format = traces.parse, self.trace.format
        amplify = self.workload.amplify
        shards, index = self.plan.count, self.plan.index
        connections = len(self.queues)
        hashes = self._hashes
        make = self._request
        skipped = self.skipped
        lines = 0
        for line in traces.lines(self.trace):
            lines += 1
            record = parse(line, format)
            if isinstance(record, str):
                if first_pass and index == 0:  # (every shard reads every line: one counts what none replays)
                    skipped[record] += 1
                continue
            time, key = record[0] or 0.0, record[1]
            for copy in range(amplify):
                name = key if not copy else f"{key}#{copy}"
                known = hashes.get(name)
                if known is None:
                    if len(hashes) >= HASHES_KEPT:
                        hashes.clear()
                    digest = blake2b(name.encode("utf-8", "surrogateescape"), digest_size=8).digest()
                    number = int.from_bytes(digest, "little")
                    known = [number % shards == index, number // shards % connections, digest.hex(), -1, None]
                    hashes[name] = known
                if not known[0]:
                    continue
                connection = known[1]
                if record[4] == "get" and known[3] == record[2]:
                    request = known[4]  # (a get of a key seen before at this size: built once)
                else:
                    request = make(record, known, connection, first_pass)
                    if request is None:
                        continue
                for _ in range(record[6]):
                    yield time, connection, request
            if first_pass:
                self.lines = lines

    def _request(self, record: traces.Record, known: list[Any], connection: int, count: bool) -> Request | None:
        """The memcached request for a record (one key of it, ``known`` its hash entry), or None (counted under
        why); a get's request is kept in the entry, for the key's next get."""
        if record.key_size > MAX_KEY_SIZE:
            if count:
                self.skipped[f"key longer than {MAX_KEY_SIZE} bytes"] += record.repeat
            return None
        if record.value_size > MAX_VALUE and record.op in _STORES:
            if count:
                self.skipped["value larger than memcached's default item size (1 MiB)"] += record.repeat
            return None
        key = self.prefix + known[2].encode()
        if len(key) < record.key_size:
            key += b"x" * (record.key_size - len(key))
        codec, op = self.codec, record.op
        slot = self.slots[op]
        if op in _STORES:
            self._wrote(key, connection)
        if op == "get":
            known[3], known[4] = record.key_size, (slot, codec.get_request(key), None)
            return known[4]  # type: ignore[no-any-return]
        if op == "gets":
            return slot, codec.gets_request(key), None
        if op == "delete":
            return slot, codec.delete_request(key), None
        if op in ("incr", "decr"):
            return slot, codec.arith_request(op.encode(), key), None
        value, label = self._value(record.value_size)
        if op == "set":
            if record.ttl:
                ttl = str(min(record.ttl, MAX_TTL_S)).encode()
                return slot, codec.set_ttl_request(key, value, label, ttl), None
            return slot, codec.set_request(key, value, label), None
        if op == "cas":  # a read-modify-write: the gets' reply sends the cas with the unique it carries
            step = CasStep(key, value, label, self.followups[connection], slot)
            return self.slots["gets"], codec.gets_request(key), step
        return slot, codec.store_request(op.encode(), key, value, label), None

    def _value(self, size: int) -> tuple[memoryview, bytes]:
        label = self._labels.get(size)
        if label is None:
            label = self._labels[size] = str(size).encode()
        return _DIGITS[:size], label

    def _wrote(self, key: bytes, connection: int) -> None:
        queue = self.queues[connection]
        if key in queue.written:
            return
        if self.tracked >= MAX_TRACKED_KEYS:
            queue.untracked += 1
            return
        queue.written.add(key)
        self.tracked += 1

    def summary(self) -> dict[str, Any]:
        """What the JSON says of the replay (counts add up over shards)."""
        return {
            "path": self.trace.path,
            "format": self.trace.format,
            "compressed": self.trace.compressed,
            "lines": self.lines if self.plan.index == 0 else 0,  # (every shard reads them all: one counts)
            "requests": self.requests,
            "passes": self.passes,
            "skipped": dict(self.skipped),
            "keys_untracked": sum(q.untracked for q in self.queues),
        }

"""Hot path, pure Python: a load connection's per-request work (the twin of the compiled ``_core``).

Each connection keeps up to ``depth`` requests in flight. Replies arrive in
request order, so a FIFO of (slot, send time, request size, expected reply) is
all the state a reply needs; the slot holds the command's parser and the
counters and latency histogram of the phase the request was sent in, where its
reply is counted. Every reply triggers the next request at once (closed loop);
all replies parsed from one read are answered by one write. In an open loop
(``rate=``) replies trigger nothing: a pacer sends on a schedule
(``send_scheduled``).

``_core.pyx`` is the same class compiled, with C-level state; both must
behave identically (the tests run the engine on each, and a differential test
feeds both the same bytes). The connection's lifecycle (open, lost,
reconnect, close) is shared Python code in ``connection``.
"""

from __future__ import annotations

import array
from collections import deque
from collections.abc import Iterator
from itertools import accumulate
from operator import mul
from time import perf_counter_ns, thread_time_ns
from typing import Any

from pytest_memaslap.engine.hot.recorder import CUT_OFF, MAX_NS, MIN_NS, RECEIVED, SENT
from pytest_memaslap.protocol.outcomes import ERROR
from pytest_memaslap.stats.histogram import BUCKET_COUNT, LAST_BUCKET, bucket_bounds, bucket_index

_DOUBLED_MIDPOINTS = array.array("Q", (sum(bucket_bounds(index)) for index in range(BUCKET_COUNT)))
REFILL = 16  # requests drawn per batch (a short block of the loop: ~4 µs compiled for get/set, ~12 µs for 12 commands)


class ConnectionCore:
    """The per-request state and work of one load connection (pure Python)."""

    def __init__(self, events: Any, index: int) -> None:
        self.events = events
        self.index = index
        self.transport: Any = None
        self.buffer = bytearray()
        self.pending: deque[tuple[Any, int, int, Any]] = deque()
        self.source: Any = None
        self.queue: Iterator[tuple[int, bytes, Any]] = iter(())
        self.slots: tuple[Any, ...] = ()
        self.stopping = False
        self.budget = -1
        self.idle: Any = None
        self.depth = 1
        self.closed = False
        self.reconnecting = False  # closed, and the shard is reopening it (reconnect=True)
        self.restored: Any = None  # reopened: True at its first reply, False if lost first
        self.paced = False  # open loop: replies do not trigger sends
        self.followups: list[tuple[int, bytes]] = []  # cas requests that gets replies asked for, sent next
        self.refill_max_ns = 0  # the longest draw of a batch of requests: how long it kept the loop from replies
        self.refill_blocks: array.array[int] | None = None  # each draw's time, counted in histogram buckets ("Q")

    def set_source(self, source: Any) -> None:
        """Draw requests from ``source`` from now on (what is left of the last batch is dropped)."""
        self.source = source
        self.queue = iter(())

    def _refill(self, count: int) -> list[tuple[int, bytes, Any]]:
        started = thread_time_ns()  # (CPU time: what the draw cost, not what the machine gave others)
        batch: list[tuple[int, bytes, Any]] = self.source.batch(count)
        took = thread_time_ns() - started
        if took > self.refill_max_ns:
            self.refill_max_ns = took
        if self.refill_blocks is not None:
            self.refill_blocks[bucket_index(took)] += 1
        return batch

    def track(self, slot: Any, sent_ns: int, size: int, expect: Any = None) -> None:
        """Count a request as in flight, its reply to be counted in ``slot`` (the send paths do this inline)."""
        self.pending.append((slot, sent_ns, size, expect))

    def in_flight(self) -> int:
        return len(self.pending)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        if buffer:
            buffer += data
            data = buffer  # type: ignore[assignment]
        pending = self.pending
        now = perf_counter_ns()
        pos = 0
        done = 0
        while pending:
            slot, sent_ns, size, expect = pending[0]
            parse, counters, latencies, second, runs = slot
            end, outcome = parse(data, pos, expect)
            if end < 0:
                break
            pending.popleft()
            # stats.bucket_index, inlined: this runs once per reply
            latency = now - sent_ns
            bits = latency.bit_length()
            if bits > 8:
                bits -= 8
                index = (bits << 7) + (latency >> bits)
                if index > LAST_BUCKET:
                    index = LAST_BUCKET
            else:
                index = latency if latency > 0 else 0
            latencies[index] += 1
            second[index] += 1
            if outcome:  # hits are derived from the histogram's count
                counters[outcome] += 1
            counters[SENT] += size
            counters[RECEIVED] += end - pos
            if latency > counters[MAX_NS]:
                counters[MAX_NS] = latency
            if latency < counters[MIN_NS]:
                counters[MIN_NS] = latency
            # recorder.keep_in_run, inlined (its layout: countdown, stride, fill, room, run end, then the latencies)
            runs[0] -= 1
            if runs[0] <= 0:
                if runs[2] < runs[3]:
                    runs[5 + runs[2]] = latency
                    runs[2] += 1
                if runs[0] <= runs[4]:
                    runs[0] = runs[1]
            pos = end
            done += 1
        if self.restored is not None and done:
            self._restored()
        if data is buffer:
            del buffer[:pos]
        elif pos < len(data):
            buffer += memoryview(data)[pos:]  # keep the incomplete rest for the next read
        if buffer and not pending:
            self.events.connection_failed(self, f"unexpected data from the server: {bytes(buffer[:80])!r}")
            buffer.clear()
            return
        if self.followups:
            done -= self._send_followups(now)  # (in place of new requests: the window stays as it was)
        if self.paced:
            if not pending and (self.stopping or self.budget == 0):
                self.give_up()
        elif done == 1 and self.budget < 0 and not self.stopping:
            # the closed loop's common case, inlined: one reply, one new request
            item = next(self.queue, None)
            if item is None:
                self.queue = iter(self._refill(REFILL))
                item = next(self.queue)
            cmd, request, expect = item
            pending.append((self.slots[cmd], now, len(request), expect))
            self.transport.write(request)
        elif done:
            self.send(done, now)

    def send_scheduled(self, due: list[int], now: int) -> int:
        """Open loop: one request per scheduled time in ``due``; returns how many were sent.

        Latency counts from the scheduled time, always: a sender held up (by a
        busy loop, a timer's step or a reconnect) shows in the latencies instead
        of being hidden; the pacer keeps how late each send was (send lag).
        """
        budget = self.budget
        if self.stopping or budget == 0 or self.closed:
            return 0
        count = len(due)
        if budget > 0:
            count = min(count, budget)
            self.budget = budget - count
        queue = self.queue
        pending = self.pending
        slots = self.slots
        out = []
        for scheduled in due[:count]:
            item = next(queue, None)
            if item is None:
                queue = self.queue = iter(self._refill(max(REFILL, count)))
                item = next(queue)
            cmd, request, expect = item
            pending.append((slots[cmd], scheduled, len(request), expect))
            out.append(request)
        self.transport.write(b"".join(out))
        return count

    def send(self, count: int, now: int) -> None:
        """Send up to ``count`` requests (within the budget), or tell the runner this connection is idle."""
        budget = self.budget
        if self.stopping or budget == 0 or self.closed:
            if self.closed and self.reconnecting and not self.stopping:
                return  # resume() sends once the connection is back
            if not self.pending and self.idle is not None and not self.idle.done():
                self.idle.set_result(None)
            return
        if budget > 0:
            if count > budget:
                count = budget
            self.budget = budget - count
        queue = self.queue
        pending = self.pending
        slots = self.slots
        out = []
        for _ in range(count):
            item = next(queue, None)
            if item is None:
                queue = self.queue = iter(self._refill(max(REFILL, count)))
                item = next(queue)
            cmd, request, expect = item
            pending.append((slots[cmd], now, len(request), expect))
            out.append(request)
        self.transport.write(out[0] if count == 1 else b"".join(out))

    def _send_followups(self, now: int) -> int:
        """Send what replies asked for (a ``cas`` after its ``gets``); each takes one request of the budget."""
        followups = self.followups
        if self.stopping or self.closed or self.budget == 0:
            followups.clear()
            return 0
        if self.budget > 0:
            del followups[self.budget :]
            self.budget -= len(followups)
        slots = self.slots
        out = []
        for slot, request in followups:
            self.pending.append((slots[slot], now, len(request), None))
            out.append(request)
        followups.clear()
        self.transport.write(b"".join(out))
        return len(out)

    def fail_pending(self, cause: int = CUT_OFF) -> None:
        """Count every request the server will never answer as abandoned (``cause``) and an error of its command.

        Not as a latency: how long the run waited before it gave up is not the
        server's answer time.
        """
        while self.pending:
            (_, counters, *_), _, size, _ = self.pending.popleft()
            counters[ERROR] += 1
            counters[cause] += 1
            counters[SENT] += size

    def _restored(self) -> None:
        """The first reply since a reconnect: the server is back."""
        restored = self.restored
        self.restored = None
        if restored is not None and not restored.done():  # (done: the runner stopped waiting)
            restored.set_result(True)

    def give_up(self) -> None:
        """No reconnect will come (the run is ending): this connection is idle."""
        self.reconnecting = False
        if self.idle is not None and not self.idle.done():
            self.idle.set_result(None)


def edge_counts(latencies: Any, cuts: tuple[int, ...]) -> tuple[list[int], int]:
    """Hot path, once a second while a live exporter runs: a dense histogram cut down to a few edges.

    Returns the requests in buckets ``[0, cut)`` for each cut, and the sum of
    all latencies, each as its bucket's midpoint (in ns, rounded down). Only
    the occupied run of buckets is read (found by C-level byte scans), so a
    command costs tens of µs here; the compiled core does it in a few.
    """
    raw = latencies.tobytes()
    first = (len(raw) - len(raw.lstrip(b"\0"))) // 8
    end = (len(raw.rstrip(b"\0")) + 7) // 8
    if end <= first:
        return [0] * len(cuts), 0
    counts = latencies[first:end]
    running = list(accumulate(counts))
    at_cuts = [running[min(cut, end) - first - 1] if cut > first else 0 for cut in cuts]
    doubled = sum(map(mul, counts, _DOUBLED_MIDPOINTS[first:end]))  # (a midpoint is a whole number or a half)
    return at_cuts, doubled // 2

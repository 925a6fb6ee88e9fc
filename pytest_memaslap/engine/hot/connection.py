"""Hot path: one pipelined memcached connection as an asyncio Protocol.

Each connection keeps up to ``depth`` requests in flight. Replies arrive in
request order, so a FIFO of (slot, send time, request size, expected reply) is
all the state a reply needs; the slot holds the command's parser and the counters and latency
histogram of the phase the request was sent in, where its reply is counted.
Every reply triggers the next request at once (closed loop); all replies
parsed from one read are answered by one write. In an open loop (``rate=``)
replies trigger nothing: a pacer sends on a schedule (``send_scheduled``).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterator
from time import perf_counter_ns
from typing import Any, Protocol

from pytest_memaslap.engine.hot.recorder import CUT_OFF, LOST, RECEIVED, SENT
from pytest_memaslap.protocol.outcomes import ERROR
from pytest_memaslap.stats.histogram import LAST_BUCKET

REFILL = 256  # requests drawn per batch from a connection's source
SEND_SLACK_NS = 2_000_000  # open loop: a send this close to its schedule is the event loop's timer step, not lag

Parser = Callable[[Any, int, Any], tuple[int, int]]
# (reply parser, phase counters, phase latencies) of one command, and the phase's histogram of this second
Slot = tuple[Parser, list[int], list[int], list[int]]


class RequestSource(Protocol):
    def batch(self, count: int) -> list[tuple[int, bytes, Any]]: ...


class ConnectionEvents(Protocol):
    """What a connection tells its runner; the runner's state flows the other way, pushed in by method calls."""

    def connection_failed(self, connection: Connection, reason: str) -> None: ...

    def connection_lost(self, connection: Connection, reason: str) -> None: ...


class Driven:
    """The state a runner pushes into a load driver (a TCP connection or a UDP socket); never read back."""

    slots: tuple[Slot, ...] = ()  # the current phase's slots, by command id
    stopping = False  # the runner said stop: replies trigger nothing more
    budget = -1  # requests this driver may still send (-1: no limit)

    def enter_phase(self, slots: tuple[Slot, ...]) -> None:
        """New requests count in these slots (replies count in the slot their request was sent with)."""
        self.slots = slots
        self.stopping = False

    def stop(self) -> None:
        """Send nothing more; the driver goes idle once its last reply is in."""
        self.stopping = True

    def set_budget(self, budget: int) -> None:
        """From now on send at most ``budget`` more requests (-1: no limit)."""
        self.budget = budget


class Connection(Driven, asyncio.Protocol):
    """A closed-loop (optionally pipelined) load connection."""

    def __init__(self, events: ConnectionEvents, index: int) -> None:
        self.events = events
        self.index = index
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.pending: deque[tuple[Slot, int, int, Any]] = deque()
        self.source: RequestSource | None = None
        self.queue: Iterator[tuple[int, bytes, Any]] = iter(())
        self.budget = -1
        self.idle: asyncio.Future[None] | None = None
        self.depth = 1
        self.closed = False
        self.reconnecting = False  # closed, and the shard is reopening it (reconnect=True)
        self.restored: asyncio.Future[bool] | None = None  # reopened: True at its first reply, False if lost first
        self.paced = False  # open loop: replies do not trigger sends
        self.followups: list[tuple[int, bytes]] = []  # cas requests that gets replies asked for, sent next

    # -- asyncio callbacks -------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed:
            return  # we closed it (``close``): the run is over
        self.closed = True
        restored = self.restored
        if restored is not None:  # reopened, and lost again before any reply: the outage goes on
            self.restored = None
            if not restored.done():  # (done: the runner stopped waiting)
                restored.set_result(False)
        why = f": {exc}" if exc else ""
        if self.pending or (self.idle is not None and not self.idle.done()):
            lost = len(self.pending)
            self.fail_pending(LOST)
            reason = f"server closed the connection{why} ({lost} request{'s' if lost != 1 else ''} unanswered)"
        else:  # between phases: the next phase must not start on a dead connection and count nothing
            reason = f"server closed the idle connection{why}"
        self.events.connection_lost(self, reason)

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
            parse, counters, latencies, second = slot
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
                self.queue = iter(self.source.batch(REFILL))  # type: ignore[union-attr]
                item = next(self.queue)
            cmd, request, expect = item
            pending.append((self.slots[cmd], now, len(request), expect))
            self.transport.write(request)  # type: ignore[union-attr]
        elif done:
            self._send(done, now)

    # -- driven by the runner ------------------------------------------------
    def await_reconnect(self) -> None:
        """The runner is reopening this closed connection: hold sends until ``resume``."""
        self.reconnecting = True

    def begin(self, source: RequestSource, budget: int, depth: int, paced: bool = False) -> asyncio.Future[None]:
        """Start sending from ``source``: ``depth`` requests in flight, ``budget`` in all (-1: no limit).

        ``paced``: open loop; nothing is sent until the pacer calls ``send_scheduled``.
        """
        loop = asyncio.get_running_loop()
        self.idle = loop.create_future()
        self.source = source
        self.queue = iter(())
        self.budget = budget
        self.depth = depth
        self.paced = paced
        if not paced:
            self._send(depth, perf_counter_ns())
        elif budget == 0:
            self.give_up()
        return self.idle

    def send_scheduled(self, due: list[int], now: int) -> int:
        """Open loop: one request per scheduled time in ``due``; returns how many were sent.

        Latency counts from the scheduled time, so a sender held up (by a busy
        loop or a reconnect) shows in the tail instead of being hidden; within
        SEND_SLACK_NS of its schedule a send counts from when it happened.
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
                queue = self.queue = iter(self.source.batch(max(REFILL, count)))  # type: ignore[union-attr]
                item = next(queue)
            cmd, request, expect = item
            sent = scheduled if now - scheduled > SEND_SLACK_NS else now
            pending.append((slots[cmd], sent, len(request), expect))
            out.append(request)
        self.transport.write(b"".join(out))  # type: ignore[union-attr]
        return count

    def _send(self, count: int, now: int) -> None:
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
        if count == 1:
            item = next(queue, None)
            if item is None:
                queue = self.queue = iter(self.source.batch(REFILL))  # type: ignore[union-attr]
                item = next(queue)
            cmd, request, expect = item
            pending.append((slots[cmd], now, len(request), expect))
            self.transport.write(request)  # type: ignore[union-attr]
            return
        out = []
        for _ in range(count):
            item = next(queue, None)
            if item is None:
                queue = self.queue = iter(self.source.batch(max(REFILL, count)))  # type: ignore[union-attr]
                item = next(queue)
            cmd, request, expect = item
            pending.append((slots[cmd], now, len(request), expect))
            out.append(request)
        self.transport.write(b"".join(out))  # type: ignore[union-attr]

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
        self.transport.write(b"".join(out))  # type: ignore[union-attr]
        return len(out)

    def fail_pending(self, cause: int = CUT_OFF) -> None:
        """Count every request the server will never answer as abandoned (``cause``) and an error of its command.

        Not as a latency: how long the run waited before it gave up is not the
        server's answer time.
        """
        while self.pending:
            (_, counters, _, _), _, size, _ = self.pending.popleft()
            counters[ERROR] += 1
            counters[cause] += 1
            counters[SENT] += size

    def resume(self) -> asyncio.Future[bool] | None:
        """Go on after a reconnect (the new transport is already set): refill the window.

        Returns a future that tells whether the server answered (True) or the
        connection was lost before its first reply (False), when requests went
        out; None when nothing was sent (between phases, an exhausted budget,
        or paced: the pacer sends what fell due during the gap). A transport
        already reset is lost at once.
        """
        loop = asyncio.get_running_loop()
        if self.transport is None or self.transport.is_closing():  # reset between its connect and now
            lost: asyncio.Future[bool] = loop.create_future()
            lost.set_result(False)
            return lost
        self.closed = False
        self.reconnecting = False
        self.buffer.clear()
        active = self.idle is not None and not self.idle.done()  # (between phases: the next begin() sends)
        if active and not self.paced:
            self.restored = loop.create_future()
            self._send(self.depth, perf_counter_ns())
            if not self.pending:
                self.restored = None
        return self.restored

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

    def in_flight(self) -> int:
        return len(self.pending)

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()

"""UDP gets (memaslap's ``-U``): one datagram per request, replies reassembled, losses counted.

memcached's UDP frames start with 8 bytes: request id, sequence number,
number of datagrams in the reply, and a reserved field. A request fits one
datagram; a reply may take several (values larger than a datagram), which
arrive in any order and may be lost. An endpoint keeps ``window`` requests
in flight (closed loop, like a TCP connection), and a request whose reply is
not complete within the loss timeout is an error of its command: the run
goes on, nothing waits forever.
"""

from __future__ import annotations

import asyncio
import random
import struct
from time import perf_counter_ns
from typing import Any

from pytest_memaslap.engine.hot.connection import REFILL, ConnectionEvents, Driven, RequestSource, Slot
from pytest_memaslap.engine.hot.recorder import CUT_OFF, MAX_NS, MIN_NS, RECEIVED, SENT, TIMED_OUT, keep_in_run
from pytest_memaslap.protocol.outcomes import ERROR
from pytest_memaslap.stats.histogram import bucket_index

FRAME = struct.Struct(">HHHH")  # request id, sequence number, datagrams in this message, reserved
MAX_DATAGRAM = 1400  # a request larger than this would need several datagrams, which memcached does not take


class UdpEndpoint(Driven, asyncio.DatagramProtocol):
    """One UDP socket to a server, with up to ``depth`` requests in flight."""

    def __init__(self, events: ConnectionEvents, index: int, loss_timeout_s: float) -> None:
        self.events = events
        self.index = index
        self.loss_timeout_ns = int(loss_timeout_s * 1e9)
        self.transport: asyncio.DatagramTransport | None = None
        # request id -> [slot, sent_ns, request size, expect, {sequence: payload}, datagrams expected]
        self.pending: dict[int, list[Any]] = {}
        self.next_id = random.randrange(1 << 16)
        self.source: RequestSource | None = None
        self.queue: Any = iter(())
        self.budget = -1
        self.depth = 1
        self.idle: asyncio.Future[None] | None = None
        self.lost = 0
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def error_received(self, exc: Exception) -> None:
        """An ICMP error (nothing listens on the port): the run cannot go on."""
        self.events.connection_failed(self, f"UDP: {exc}")  # type: ignore[arg-type]

    def begin(self, source: RequestSource, budget: int, depth: int, paced: bool = False) -> asyncio.Future[None]:
        self.idle = asyncio.get_running_loop().create_future()
        self.source, self.queue, self.budget, self.depth = source, iter(()), budget, depth
        self._send(depth, perf_counter_ns())
        return self.idle

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if len(data) < FRAME.size:
            return
        request_id, sequence, total, _ = FRAME.unpack_from(data)
        entry = self.pending.get(request_id)
        if entry is None or total == 0:
            return  # a late reply to a request already counted as lost, or a frame that announces nothing
        entry[4][sequence] = data[FRAME.size :]
        entry[5] = total
        if len(entry[4]) < total:
            return
        del self.pending[request_id]
        now = perf_counter_ns()
        parts = entry[4]
        payload = b"".join(parts[i] for i in range(total)) if all(i in parts for i in range(total)) else b""
        slot, sent_ns, size, expect = entry[0], entry[1], entry[2], entry[3]
        end, outcome = slot[0](payload, 0, expect) if payload else (-1, ERROR)
        if end != len(payload):
            outcome = ERROR  # incomplete or with bytes left over: not the reply that was asked for
        self._record(slot, now - sent_ns, outcome, size, len(payload) + FRAME.size * total)
        self._send(1, now)

    def sweep(self, now: int) -> None:
        """Count requests whose replies did not come within the loss timeout as errors; refill the window."""
        lost = [rid for rid, entry in self.pending.items() if now - entry[1] > self.loss_timeout_ns]
        for rid in lost:
            slot, _, size = self.pending.pop(rid)[:3]
            _abandon(slot, size, TIMED_OUT)
        if lost:
            self.lost += len(lost)
            self._send(len(lost), now)

    def _record(self, slot: Slot, latency_ns: int, outcome: int, sent: int, received: int) -> None:
        _, counters, latencies, second, runs = slot
        keep_in_run(runs, latency_ns)
        index = bucket_index(latency_ns)
        latencies[index] += 1
        second[index] += 1
        if outcome:
            counters[outcome] += 1
        counters[SENT] += sent
        counters[RECEIVED] += received
        if latency_ns > counters[MAX_NS]:
            counters[MAX_NS] = latency_ns
        if latency_ns < counters[MIN_NS]:
            counters[MIN_NS] = latency_ns

    def _send(self, count: int, now: int) -> None:
        budget = self.budget
        if self.stopping or budget == 0 or self.closed:
            if not self.pending:
                self.give_up()
            return
        if budget > 0:
            count = min(count, budget)
            self.budget = budget - count
        slots = self.slots
        for _ in range(count):
            item = next(self.queue, None)
            if item is None:
                self.queue = iter(self.source.batch(REFILL))  # type: ignore[union-attr]
                item = next(self.queue)
            cmd, request, expect = item
            request_id = self.next_id
            self.next_id = (request_id + 1) & 0xFFFF
            self.pending[request_id] = [slots[cmd], now, len(request) + FRAME.size, expect, {}, 1]
            self.transport.sendto(FRAME.pack(request_id, 0, 1, 0) + request)  # type: ignore[union-attr]

    def in_flight(self) -> int:
        return len(self.pending)

    def give_up(self) -> None:
        if self.idle is not None and not self.idle.done():
            self.idle.set_result(None)

    def fail_pending(self, cause: int = CUT_OFF) -> None:
        """The run ends: what is still unanswered counts as abandoned (and as errors), not as latencies."""
        for slot, _, size, *_ in self.pending.values():
            _abandon(slot, size, cause)
        self.pending.clear()

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()


def _abandon(slot: Slot, size: int, cause: int) -> None:
    """A request given up on: an error of its command, by cause; no latency sample."""
    counters = slot[1]
    counters[ERROR] += 1
    counters[cause] += 1
    counters[SENT] += size

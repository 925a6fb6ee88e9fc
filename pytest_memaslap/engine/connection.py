"""Hot path: one pipelined memcached connection as an asyncio Protocol.

Each connection keeps up to ``depth`` requests in flight. Replies arrive in
request order, so a FIFO of (phase recorder, command, send time, request size)
is all the state a reply needs; a request counts in the phase it was sent in.
Every reply triggers the next request at once (closed loop); all replies
parsed from one read are answered by one write.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from time import perf_counter_ns
from typing import TYPE_CHECKING, Any, Protocol

from .ascii import ERROR

if TYPE_CHECKING:
    from ..stats import PhaseRecorder

Parser = Callable[[Any, int], tuple[int, int]]


class RequestSource(Protocol):
    def next_request(self) -> tuple[int, bytes]: ...


class ShardState(Protocol):
    """What a connection reads from its shard: the phase's recorder and stop flag."""

    recorder: PhaseRecorder
    stopping: bool
    last_reply_ns: int

    def connection_failed(self, connection: Connection, reason: str) -> None: ...


class Connection(asyncio.Protocol):
    """A closed-loop (optionally pipelined) load connection."""

    def __init__(self, shard: ShardState, index: int) -> None:
        self.shard = shard
        self.index = index
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.pending: deque[tuple[PhaseRecorder, int, int, int]] = deque()
        self.parsers: tuple[Parser, ...] = ()
        self.source: RequestSource | None = None
        self.budget = -1
        self.idle: asyncio.Future[None] | None = None
        self.closed = False

    # -- asyncio callbacks -------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.pending or (self.idle is not None and not self.idle.done()):
            lost = len(self.pending)
            self._fail_pending()
            why = f": {exc}" if exc else ""
            self.shard.connection_failed(
                self, f"server closed the connection{why} ({lost} request{'s' if lost != 1 else ''} unanswered)"
            )

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        pending = self.pending
        parsers = self.parsers
        shard = self.shard
        now = perf_counter_ns()
        pos = 0
        done = 0
        while pending:
            recorder, cmd, sent_ns, size = pending[0]
            end, outcome = parsers[cmd](buffer, pos)
            if end < 0:
                break
            pending.popleft()
            recorder.record(cmd, outcome, now - sent_ns, size, end - pos)
            pos = end
            done += 1
        if pos:
            del buffer[:pos]
        if buffer and not pending:
            self.shard.connection_failed(self, f"unexpected data from the server: {bytes(buffer[:80])!r}")
            buffer.clear()
            return
        shard.last_reply_ns = now
        current = shard.recorder
        if now >= current.next_tick:
            current.tick(now)
        if done:
            self._send(done)

    # -- driving -----------------------------------------------------------
    def begin(
        self, source: RequestSource, parsers: tuple[Parser, ...], budget: int, depth: int
    ) -> asyncio.Future[None]:
        """Start a phase: send ``depth`` requests (at most ``budget``; -1 is unlimited)."""
        loop = asyncio.get_running_loop()
        self.idle = loop.create_future()
        self.source = source
        self.parsers = parsers
        self.budget = budget
        self._send(depth)
        return self.idle

    def _send(self, count: int) -> None:
        budget = self.budget
        if self.shard.stopping or budget == 0 or self.closed:
            if not self.pending and self.idle is not None and not self.idle.done():
                self.idle.set_result(None)
            return
        if budget > 0:
            if count > budget:
                count = budget
            self.budget = budget - count
        next_request = self.source.next_request  # type: ignore[union-attr]
        pending = self.pending
        recorder = self.shard.recorder
        now = perf_counter_ns()
        if count == 1:
            cmd, request = next_request()
            pending.append((recorder, cmd, now, len(request)))
            self.transport.write(request)  # type: ignore[union-attr]
            return
        out = []
        for _ in range(count):
            cmd, request = next_request()
            pending.append((recorder, cmd, now, len(request)))
            out.append(request)
        self.transport.write(b"".join(out))  # type: ignore[union-attr]

    def _fail_pending(self) -> None:
        """Count every request the server will never answer as an error of its command."""
        now = perf_counter_ns()
        while self.pending:
            recorder, cmd, sent_ns, size = self.pending.popleft()
            recorder.record(cmd, ERROR, now - sent_ns, size, 0)

    def in_flight(self) -> int:
        return len(self.pending)

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()

"""Every wait of a shard, bounded and watched: a failed connection, a server that stops answering, or one that
answers nothing but errors ends it.

A shard waits for the other shards, for its connections to go idle and for
the end of each phase; all of it goes through ``StallWatchdog.wait``. Ten
times a second it looks: a connection that reported a failure ends the wait
at once, and requests in flight with no reply byte for the workload's
``timeout`` fail the run (those requests count as timed out). Each look is
periodic work on the event loop, so it is timed like the others
(``engine.periodic_us.stall_watchdog``).
"""

from __future__ import annotations

import asyncio
import math
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from time import perf_counter_ns
from typing import Any

from pytest_memaslap.engine.errors import SlapRunError
from pytest_memaslap.engine.hot.connection import Connection
from pytest_memaslap.engine.hot.recorder import TIMED_OUT
from pytest_memaslap.memcached.endpoint import Target
from pytest_memaslap.stats.results import Blocks, Second

POLL_S = 0.1
ONLY_ERRORS_MIN_S = 3  # whole seconds in which every reply was an error, at the least, before the run ends
PROBE_TIMEOUT_S = 1.0  # how long the run waits for a failing server's answer to a plain ``get``, to quote it


class StallWatchdog:
    """Waits on the event loop for a shard: bounded by a deadline, ended early by a failure or a stalled server."""

    def __init__(
        self,
        target: Target,
        timeout_s: float,
        failure: asyncio.Future[str],
        replies: Callable[[], int],
        connections: Callable[[], Sequence[Connection]],
        blocks: Blocks,
    ) -> None:
        self.target = target  # (named in the error)
        self.timeout_s = timeout_s
        self.failure = failure  # set by the shard when a connection fails: the reason
        self.replies = replies  # grows with every reply of any phase: the sign of life
        self.connections = connections
        self.blocks = blocks  # each look's CPU time

    async def wait(self, awaitable: Awaitable[Any], until_ns: int | None = None) -> None:
        """Wait for ``awaitable`` (until ``until_ns`` at most); fail fast on a failed connection or a stalled server.

        Deadlines are on ``perf_counter_ns``, the clock the phases are measured
        with, so a phase never ends early because the loop's clock is cached.
        """
        task = asyncio.ensure_future(awaitable)
        stall_ns = int(self.timeout_s * 1e9)
        seen, seen_ns = self.replies(), perf_counter_ns()
        try:
            while True:
                poll = POLL_S
                if until_ns is not None:
                    poll = min(POLL_S, max(0.0, (until_ns - perf_counter_ns()) / 1e9))
                await asyncio.wait({task, self.failure}, timeout=poll, return_when=asyncio.FIRST_COMPLETED)
                if self.failure.done():
                    raise SlapRunError(self.failure.result())
                if task.done():
                    task.result()
                    return
                if until_ns is not None and perf_counter_ns() >= until_ns:
                    return
                started = time.thread_time_ns()  # (CPU time: what the look cost, not what the machine gave others)
                now = perf_counter_ns()
                replies = self.replies()
                if replies != seen:
                    seen, seen_ns = replies, now
                connections = self.connections()
                in_flight = sum(c.in_flight() for c in connections)
                self.blocks.record(time.thread_time_ns() - started)
                if in_flight and now - seen_ns > stall_ns:
                    for connection in connections:  # they waited the whole timeout: timed out, not cut off
                        connection.fail_pending(TIMED_OUT)
                    raise SlapRunError(
                        f"no reply from memcached at {self.target} for {self.timeout_s:g} s "
                        f"({in_flight} request{'s' if in_flight != 1 else ''} in flight)"
                    )
        finally:
            if not task.done():
                task.cancel()
                task.add_done_callback(_retrieve)  # a cancelled gather reports CancelledError as its exception


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def only_errors(timeline: Sequence[Second], timeout_s: float, target: Target, protocol: str) -> str | None:
    """Why the run must end when every reply of its last ``timeout`` seconds (3 at the least) was an error (a
    server answering junk, or refusing every request: each junk reply is a sign of life to the stall check);
    None otherwise. Called once a second, as the timeline's second closes."""
    need = max(ONLY_ERRORS_MIN_S, math.ceil(timeout_s))
    seconds = timeline[-need:]
    if len(seconds) < need or not all(s.ops and s.errors >= s.ops for s in seconds):
        return None
    errors = sum(s.errors for s in seconds)
    quoted = _probe(target, protocol)
    return f"every reply of memcached at {target} for {need} s was an error ({errors:,} replies): {quoted}"


def _probe(target: Target, protocol: str) -> str:
    """What the failing server answers to one plain ``get``, on a connection of its own: its bad bytes quoted,
    or that it answers as memcached does (and so refuses these requests)."""
    if target.sasl is not None or protocol == "binary":
        return "see the server's log"
    try:
        with socket.create_connection((target.host, target.port), timeout=PROBE_TIMEOUT_S) as plain:
            sock = target.tls.wrap_socket(plain, server_hostname=target.host) if target.tls else plain
            sock.sendall(b"get slap-probe\r\n")
            reply = sock.recv(200)
    except OSError as exc:
        return f"and a plain `get` on a connection of its own got no answer ({exc.strerror or exc})"
    if reply.startswith((b"END\r\n", b"VALUE ")):
        return (
            "a plain `get` on a connection of its own is answered as memcached does, so it refuses these "
            "requests (CLIENT_ERROR or SERVER_ERROR: see the server's log, or the commands and sizes asked of it)"
        )
    return f"a plain `get` on a connection of its own was answered {reply[:80]!r}: is it a memcached server?"

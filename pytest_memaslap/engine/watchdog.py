"""Every wait of a shard, bounded and watched: a failed connection or a server that stops answering ends it.

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
import time
from collections.abc import Awaitable, Callable, Sequence
from time import perf_counter_ns
from typing import Any

from pytest_memaslap.engine.errors import SlapRunError
from pytest_memaslap.engine.hot.connection import Connection
from pytest_memaslap.engine.hot.recorder import TIMED_OUT
from pytest_memaslap.memcached.endpoint import Target
from pytest_memaslap.stats.results import Blocks

POLL_S = 0.1


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

"""``poll_interval=``: the shard's event loop sleeps a fixed interval between passes instead of waking per reply.

Why: on one machine a server's send runs the client's TCP receive path and,
when the client waits in its poll, wakes it. Pipelined, a load generator that
wakes for every few replies made memcached spend 16-19 % of its CPU waking it.
Sleeping between passes (in ``nanosleep``, not in the poll) leaves the server
nothing to wake and lets replies gather so that one read takes many: at 8 x 16
the server then answered 1.31x the requests a second it answered
memtier_benchmark at the same workload, and the load's own CPU per request
halved (docs/speed.md, "the pipelined gap"). At window 1 it costs
throughput: a reply waits up to the interval to be read.

Hot path: the sleep runs once per loop pass. It keeps itself scheduled with
``call_soon``, which also keeps the loop from blocking in its poll, and stops
at the next pass after ``stop``. The thread's timer slack (50 µs by default
on Linux) is set to 1 µs while it runs, so the interval is the one asked for.
"""

from __future__ import annotations

import asyncio
import ctypes
import sys
from collections.abc import Callable
from time import sleep

_PR_SET_TIMERSLACK = 29
_PR_GET_TIMERSLACK = 30
_SLACK_NS = 1_000


def _prctl() -> Callable[..., int] | None:
    """libc's ``prctl`` (Linux), which sets the calling thread's timer slack; None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4  # (the kernel reads unsigned longs: no stray high bits)
    prctl.restype = ctypes.c_int
    return prctl


class PollInterval:
    """Sleeps ``seconds`` on every pass of the running loop, from ``start`` to ``stop`` (same thread)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped = False
        self._prctl = _prctl()
        self._slack_before: int | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self._prctl is not None:
            before = self._prctl(_PR_GET_TIMERSLACK, 0, 0, 0, 0)
            if before > 0 and self._prctl(_PR_SET_TIMERSLACK, _SLACK_NS, 0, 0, 0) == 0:
                self._slack_before = before
        self._loop.call_soon(self._pause)

    def stop(self) -> None:
        self._stopped = True
        if self._prctl is not None and self._slack_before is not None:
            self._prctl(_PR_SET_TIMERSLACK, self._slack_before, 0, 0, 0)
            self._slack_before = None

    def _pause(self) -> None:
        if self._stopped or self._loop is None or self._loop.is_closed():
            return
        sleep(self.seconds)
        self._loop.call_soon(self._pause)

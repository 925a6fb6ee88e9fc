"""``busy_poll=``: the shard's event loop spins after each pass instead of sleeping until a reply arrives.

Why: on one machine a server's send runs the client's TCP receive path and,
when the client sleeps, wakes it; pipelined, a load generator that sleeps
between replies made memcached spend 16-19 % of its CPU waking it and
drew 0.75x memtier_benchmark's throughput from the same server (0.96x with a
spin of 100 us). Staying awake
a little after each pass lets replies gather, so each read takes many and the
server seldom finds the load asleep (docs/speed.md, "the pipelined gap").

Hot path: the spin runs once per loop pass. It keeps itself scheduled with
``call_soon``, which also keeps the loop from blocking in its poll, and stops
at the next pass after ``stop``.
"""

from __future__ import annotations

import asyncio
from time import perf_counter


class BusyPoll:
    """Spins ``seconds`` on every pass of the running loop from ``start`` to ``stop``."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped = False

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.call_soon(self._spin)

    def stop(self) -> None:
        self._stopped = True

    def _spin(self) -> None:
        if self._stopped or self._loop is None or self._loop.is_closed():
            return
        until = perf_counter() + self.seconds
        while perf_counter() < until:
            pass
        self._loop.call_soon(self._spin)

"""How busy the load process itself is while it measures: its CPU share, its event loop's lag, the machine's hiccups.

A load generator that is the bottleneck reports its own queueing as the
server's latency. So the measured phase is watched from inside: every 10 ms
a timer fires and schedules a callback for "as soon as possible". How late
the timer fired (beyond the loop's 1 ms timer step) plus how long that
callback then waited is how long a reply arriving when the timer was due
would have waited for the loop: the loop's lag. The process's CPU time over
the phase's wall time is its CPU share; its user and system parts, over the
requests of the phase, are what the load cost per request (the figure to
compare with other load generators: set-up is not in it).

Beside them, the compiled hiccup meter (``engine._hiccups``) sleeps 5 ms at
a time on a thread of its own and counts how late it wakes: the stalls of
the machine itself, which land in every latency and every periodic block
whatever the engine does. Without the compiled extensions it is not
measured (a Python thread would measure the event loop instead).
"""

from __future__ import annotations

import asyncio
import resource
from time import perf_counter_ns
from typing import Any

from pytest_memaslap import hotpath
from pytest_memaslap.stats.histogram import Histogram

PROBE_INTERVAL_S = 0.01
TIMER_STEP_NS = 1_000_000  # uvloop's timers step in milliseconds: lateness within a step is not lag
# the hiccup meter's sleep: a stall of 5 ms or more always lands in one, a shorter one as often as it
# would delay a wake-up at a random time; 1 ms (jHiccup's) woke the thread it shares a core with too
# often: 2 % fewer ops/s and 9 % more p99 at memaslap's shape here, against nothing measurable at 5 ms
HICCUP_INTERVAL_NS = 5_000_000


class LoadMonitor:
    """Samples the loop's lag and the process's CPU over one phase (``start`` ... ``stop``)."""

    def __init__(self) -> None:
        self.lag = Histogram()  # ns a ready callback waited for the loop, one sample per probe
        self.cpu_pct = 0.0  # process CPU time / wall time of the phase, in % (100 = one core busy)
        self.user_s = 0.0  # the process's CPU time in the phase: in user space
        self.system_s = 0.0  # and in the kernel (its socket calls)
        self._timer: asyncio.TimerHandle | None = None
        self._usage_start = resource.getrusage(resource.RUSAGE_SELF)  # (µs resolution; os.times() has 10 ms)
        self._wall_start_ns = 0
        self._due_ns = 0  # when the next probe's timer should fire
        self.hiccups = Histogram()  # how late the meter woke from each sleep (ns); empty: not measured
        self._meter = hiccup_meter()

    def start(self) -> None:
        self._usage_start = resource.getrusage(resource.RUSAGE_SELF)
        self._wall_start_ns = perf_counter_ns()
        self._schedule()
        if self._meter is not None:
            try:
                self._meter.start()
            except OSError:  # no thread to spare: the load runs, without the machine's hiccups
                self._meter = None

    def _schedule(self) -> None:
        self._due_ns = perf_counter_ns() + int(PROBE_INTERVAL_S * 1e9)
        self._timer = asyncio.get_running_loop().call_later(PROBE_INTERVAL_S, self._probe)

    def _probe(self) -> None:
        now = perf_counter_ns()
        asyncio.get_running_loop().call_soon(self._measure, now, max(0, now - self._due_ns - TIMER_STEP_NS))
        self._schedule()

    def _measure(self, fired_ns: int, timer_late_ns: int) -> None:
        self.lag.record(timer_late_ns + perf_counter_ns() - fired_ns)

    def stop(self) -> None:
        if self._meter is not None and self._meter.running:
            self.hiccups = Histogram.from_sparse(self._meter.stop())
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            wall_s = (perf_counter_ns() - self._wall_start_ns) / 1e9
            usage = resource.getrusage(resource.RUSAGE_SELF)
            self.user_s = usage.ru_utime - self._usage_start.ru_utime
            self.system_s = usage.ru_stime - self._usage_start.ru_stime
            self.cpu_pct = (self.user_s + self.system_s) / wall_s * 100 if wall_s > 0 else 0.0


def hiccup_meter() -> Any:
    """The compiled hiccup meter, or None: not built, or the pure-Python engine asked for."""
    if not hotpath.wanted():
        return None
    try:
        from pytest_memaslap.engine._hiccups import HiccupMeter
    except ImportError:
        return None
    return HiccupMeter(HICCUP_INTERVAL_NS)

"""Open loop (``rate=``): requests leave on a schedule, whatever the server does.

A closed loop waits for a reply before the next request, so a stalled server
also stalls the load and the stall hides from the latencies (coordinated
omission). Here each connection has its own arrival schedule, Poisson
(exponential gaps) or uniform (even gaps, connections staggered), and a timer
sends every request whose time has come. Latency counts from the scheduled
time (see ``Connection.send_scheduled``), always: how late the sender was is
in the latency, and also on its own, per request, in ``send_lag`` (actual
minus scheduled send time).
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections.abc import Callable, Sequence
from time import perf_counter_ns

from pytest_memaslap.engine.hot.connection import Connection
from pytest_memaslap.model.presets import etc_gap
from pytest_memaslap.model.rate_profile import RateProfile
from pytest_memaslap.stats.histogram import Histogram

RECONNECT_POLL_S = 0.005  # how often a reconnecting connection is looked at again
# uvloop's timers step in milliseconds: a sleep of 0.6 ms may last 2. The pacer sleeps until this close to
# the next send, then spins (a zero-delay callback each loop iteration, I/O still served) for the last stretch.
SPIN_NS = 1_500_000
SPIN_SAMPLE_EVERY = 64  # one idle tick in this many is timed (to the next tick), to price the spin


class Pacer:
    """Drives paced connections on their schedules until ``stop``; records how far it fell behind."""

    def __init__(
        self,
        connections: Sequence[Connection],
        profile: RateProfile,
        share: float,
        arrivals: str,
        rngs: Sequence[random.Random],
    ) -> None:
        """``share``: this shard's part of the profile's rate (its part of all the run's connections)."""
        self.connections = list(connections)
        self.profile = profile
        # connection i's n-th request is due when the whole run has had (n + offset) * count_scale requests due
        self.count_scale = len(self.connections) / share
        self.poisson = arrivals == "poisson"
        self.etc = arrivals == "etc"  # Facebook ETC's generalized Pareto gaps (model.presets)
        self.rngs = list(rngs)
        self.counts: list[float] = []  # per connection: its next request's place in its own count space
        self.next_ns: list[float] = []
        self.start_ns = 0
        self.max_lag_ns = 0
        self.send_lag = Histogram()  # per request sent: how long after its scheduled time it went out (ns)
        self.sent = 0
        self.ticker = Ticker()
        self.departures: list[int] = []  # a sample of send times (ns): the validity check's arrivals
        self.departures_wanted = 0  # how many more to keep (set when the measured phase begins)

    def start(self) -> None:
        self.start_ns = perf_counter_ns()
        count = len(self.connections)
        if self.poisson or self.etc:
            self.counts = [self._gap(i) for i in range(count)]
        else:  # staggered, so the connections' sends interleave evenly instead of bunching
            self.counts = [(i + 1) / count for i in range(count)]
        self.next_ns = [self._due(c) for c in self.counts]
        self._tick()

    def _gap(self, connection: int) -> float:
        """The next arrival's distance in count space (1 request per unit, on average): exponential, ETC's
        generalized Pareto, or exactly 1."""
        if self.poisson:
            return self.rngs[connection].expovariate(1.0)
        if self.etc:
            return etc_gap(self.rngs[connection].random())
        return 1.0

    def _due(self, count: float) -> float:
        """When a connection's request at ``count`` is due (ns; inf: never, the stages are over)."""
        return self.start_ns + self.profile.time_of(count * self.count_scale) * 1e9

    def _tick(self) -> None:
        if self.ticker.stopped:
            return
        sample = self.ticker.tick_begins()
        now = perf_counter_ns()
        soonest = float("inf")
        sent_before = self.sent
        for i, connection in enumerate(self.connections):
            scheduled = self.next_ns[i]
            if connection.closed:
                # reconnecting: what falls due meanwhile goes out on resume, counted from its schedule
                soonest = min(soonest, now + RECONNECT_POLL_S * 1e9)
                continue
            due: list[int] = []
            while scheduled <= now:
                due.append(int(scheduled))
                self.counts[i] += self._gap(i)
                scheduled = self._due(self.counts[i])
            self.next_ns[i] = scheduled
            soonest = min(soonest, scheduled)
            if due:
                lag = now - due[0]
                if lag > self.max_lag_ns:
                    self.max_lag_ns = lag
                sent = connection.send_scheduled(due, now)
                if self.departures_wanted > 0:  # (when its write went out: a batch of due requests leaves at once)
                    kept = min(sent, self.departures_wanted)
                    self.departures.extend([perf_counter_ns()] * kept)
                    self.departures_wanted -= kept
                record = self.send_lag.record
                for scheduled in due[:sent]:
                    record(now - scheduled)
                self.sent += sent
        if soonest == float("inf"):  # the stages are over: nothing more is due
            return
        self.ticker.next_tick(soonest, self.sent == sent_before, sample, self._tick)

    def stop(self) -> None:
        self.ticker.stop(self.connections)


class Ticker:
    """A pacer's clock: schedules its next tick (a timer, then a spin for the last stretch), prices the spin,
    and stops it.

    An idle tick (nothing was due) is the spin's cost; one in ``SPIN_SAMPLE_EVERY``
    is timed in CPU time, to the next tick's start, so the spin can be taken
    out of the cost per request.
    """

    def __init__(self) -> None:
        self.idle_ticks = 0  # ticks that found nothing due: the spin
        self.samples: list[int] = []  # CPU ns from a sampled idle tick's start to the next tick's start
        self.stopped = False
        self._sample_from = 0
        self._handle: asyncio.TimerHandle | None = None

    def tick_begins(self) -> int:
        """Call first in a tick: closes the previous sample; returns this tick's sample start (0: not sampled)."""
        if self._sample_from:  # (the previous tick was an idle one being timed: one whole spin iteration)
            self.samples.append(time.thread_time_ns() - self._sample_from)
            self._sample_from = 0
        return time.thread_time_ns() if self.idle_ticks % SPIN_SAMPLE_EVERY == 0 else 0

    def next_tick(self, soonest_ns: float, idle: bool, sample: int, tick: Callable[[], None]) -> None:
        """Schedule ``tick`` for the next send due at ``soonest_ns``: a timer until close, then each loop
        iteration (uvloop's timers step in milliseconds)."""
        if idle:
            self.idle_ticks += 1
        remaining = soonest_ns - perf_counter_ns()
        loop = asyncio.get_running_loop()
        if remaining <= SPIN_NS:
            if idle and sample:
                self._sample_from = sample
            self._handle = loop.call_later(0, tick)  # the final approach: every loop iteration
        else:
            self._handle = loop.call_later((remaining - SPIN_NS) / 1e9, tick)

    def stop(self, connections: Sequence[Connection]) -> None:
        """No more ticks; connections with nothing in flight are idle now, the others when drained."""
        self.stopped = True
        if self._handle is not None:
            self._handle.cancel()
        for connection in connections:
            if not connection.in_flight():
                connection.give_up()

    def cpu_s(self, idle_ticks: int) -> float:
        """The CPU seconds ``idle_ticks`` idle ticks cost: each priced at the median of the timed ones (a loop
        iteration that also read replies costs more; the median leaves those out)."""
        if not self.samples or not idle_ticks:
            return 0.0
        return idle_ticks * statistics.median(self.samples) / 1e9

"""Trace replay (``trace=``): a cache trace's own requests, at their recorded times (or a steady rate).

An open loop whose schedule is the trace: each request is due at its
intended time (see ``hot.replay``), goes out on its key's connection when
due, and its latency counts from that time, so a server that falls behind
the trace shows in the latencies (no coordinated omission). The run ends
with the trace (or at ``duration`` / ``ops``; ``loop=True`` repeats it).
"""

from __future__ import annotations

import asyncio
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from time import perf_counter_ns

from pytest_memaslap.engine.hot.connection import Connection
from pytest_memaslap.engine.hot.replay import ReplayFeed, Scheduled, TraceQueue
from pytest_memaslap.engine.pacer import Ticker
from pytest_memaslap.engine.shapes.base import PacedShape, Run
from pytest_memaslap.stats.histogram import Histogram, bucket_index
from pytest_memaslap.stats.results import ShardResult

MAX_PER_TICK = 4096  # requests made due in one tick at most: a replay far behind still lets replies in
READ_BUDGET_NS = 200_000  # reading the trace ahead takes at most about this long a tick
PRIME_BUDGET_NS = 2_000_000_000  # the first read-ahead, before the clock starts
MAX_READY = 100_000  # requests read ahead at most (besides the second a timed trace is reading)
READ_INTERVAL_S = 0.01  # while the schedule is not read far enough ahead, a tick comes at least this often
RECONNECT_POLL_S = 0.005  # how often a tick comes while a connection with due requests is reconnecting


class ReplayPacer:
    """Sends each scheduled request on its connection when its time comes; keeps how late each went out.

    It reads the schedule ahead of the clock (``ReplayFeed.lookahead_s``),
    for at most ``READ_BUDGET_NS`` a tick, so reading a trace never holds up
    the replies; a replay whose reading falls behind shows it as send lag.
    """

    def __init__(
        self,
        connections: Sequence[Connection],
        queues: Sequence[TraceQueue],
        schedule: Iterator[Scheduled | None],
        lookahead_s: float,
        finished: Callable[[], None],
    ) -> None:
        self.connections = list(connections)
        self.queues = list(queues)
        self.schedule = schedule
        self.lookahead_ns = int(lookahead_s * 1e9)
        self.finished = finished  # called once the trace (or its share of ops) is all sent
        self.ready: deque[Scheduled] = deque()  # read, not yet due
        self.read_all = False
        self.due: list[list[int]] = [[] for _ in self.connections]  # per connection: queued requests' times
        self.send_lag = Histogram()
        self.max_lag_ns = 0
        self.sent = 0
        self.ticker = Ticker()
        self.start_ns = 0
        self.departures: list[int] = []  # (a replay's departures follow its trace: not checked against a law)
        self.departures_wanted = 0

    def prime(self) -> None:
        """Before the load starts: read the first ``lookahead`` of the schedule (nothing is due yet)."""
        self.start_ns = perf_counter_ns()
        self._read_ahead(self.start_ns, budget_ns=PRIME_BUDGET_NS)

    def start(self) -> None:
        self.start_ns = perf_counter_ns()
        self._tick()

    def _read_ahead(self, now: int, budget_ns: int = READ_BUDGET_NS) -> bool:
        """Read the schedule until it is ``lookahead`` ahead of ``now`` or ``budget_ns`` is spent; whether
        there is more to read now. Hot path when a replay runs behind."""
        ready = self.ready
        horizon_s = (now - self.start_ns + self.lookahead_ns) / 1e9
        if self.read_all or (ready and ready[-1][0] >= horizon_s) or len(ready) >= MAX_READY:
            return False
        stop_ns = perf_counter_ns() + budget_ns
        append = ready.append
        steps = 0
        for item in self.schedule:  # (a for loop resumes the generator faster than next(); break leaves it open)
            steps += 1
            if item is not None:
                append(item)
                if item[0] >= horizon_s or len(ready) >= MAX_READY:
                    return False
            if not steps & 31 and perf_counter_ns() > stop_ns:
                return True
        self.read_all = True
        return False

    def _tick(self) -> None:
        """Hot path: queue what fell due, send each connection's due requests in one write."""
        if self.ticker.stopped:
            return
        sample = self.ticker.tick_begins()
        now = perf_counter_ns()
        behind = self._read_ahead(now)
        start_ns, due, queues, ready = self.start_ns, self.due, self.queues, self.ready
        made = 0
        while ready and made < MAX_PER_TICK:
            scheduled = start_ns + int(ready[0][0] * 1e9)
            if scheduled > now:
                break
            _, target, request = ready.popleft()
            queues[target].requests.append(request)
            due[target].append(scheduled)
            made += 1
        sent_before = self.sent
        waiting = False
        lags = self.send_lag.counts
        for index, times in enumerate(due):
            if not times:
                continue
            connection = self.connections[index]
            if connection.closed:  # reconnecting: its requests wait, counted from their intended times
                waiting = True
                continue
            lag = now - times[0]
            if lag > self.max_lag_ns:
                self.max_lag_ns = lag
            sent = connection.send_scheduled(times, now)
            for scheduled in times[:sent]:
                lags[bucket_index(now - scheduled)] += 1
            self.sent += sent
            due[index] = []
            queues[index].requests.clear()  # (a stopped connection sent fewer: the rest is dropped)
        if self.read_all and not ready and not waiting:
            self.finished()
            return
        if made == MAX_PER_TICK or behind:  # far behind: the rest on the next loop iteration, after the replies
            soonest = float(now)
        else:
            soonest = start_ns + ready[0][0] * 1e9 if ready else now + READ_INTERVAL_S * 1e9
            if waiting:
                soonest = min(soonest, now + RECONNECT_POLL_S * 1e9)
            if not self.read_all:
                soonest = min(soonest, now + READ_INTERVAL_S * 1e9)
        self.ticker.next_tick(soonest, self.sent == sent_before, sample, self._tick)

    def stop(self) -> None:
        self.ticker.stop(self.connections)
        close = getattr(self.schedule, "close", None)
        if close is not None:  # (the trace file is closed now, not when the reader is collected)
            close()


class TraceReplay(PacedShape):
    """The trace's requests on the shard's connections, paced by the trace; what it skipped, counted."""

    def __init__(self) -> None:
        super().__init__()
        self.feed: ReplayFeed | None = None

    async def load(self, run: Run) -> None:
        workload = run.workload
        connections = run.connections
        queues = [TraceQueue() for _ in connections]
        run.sources = queues  # (their written keys are what --slap-cleanup deletes)
        followups = [connection.followups for connection in connections]
        self.feed = feed = ReplayFeed(workload, run.plan, run.codec, run.prefix, queues, followups)
        drivers = await run.open_drivers()

        def finished() -> None:  # the trace is all sent: the connections end as their last replies come in
            run.stop(drivers)
            pacer.stop()

        pacer = ReplayPacer(connections, queues, feed.schedule(), feed.lookahead_s, finished)
        self.pacer = pacer
        pacer.prime()

        def begin(budgets: list[int]) -> list[asyncio.Future[None]]:
            idle = [
                driver.begin(queue, -1, workload.window, True) for driver, queue in zip(drivers, queues, strict=True)
            ]
            pacer.start()
            return idle

        await self.paced_load(run, drivers, begin, budgeted=False)

    def keep(self, result: ShardResult) -> None:
        """The replay's own counts: lines read, requests sent, lines skipped by reason."""
        if self.feed is None:
            return
        result.replay = self.feed.summary()
        untracked = result.replay["keys_untracked"]
        if untracked:
            warnings.warn(
                f"trace replay: {untracked:,} stores past the {self.feed.tracked:,} keys a shard remembers; "
                f"--slap-cleanup may leave keys under the prefix {self.feed.prefix.decode()!r}",
                stacklevel=1,
            )

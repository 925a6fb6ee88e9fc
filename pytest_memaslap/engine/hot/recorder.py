"""Hot path: counts one phase's completions per command, and closes each second in small slices.

Per command there is one ``counters`` list indexed by outcome code (hits
unused, misses, errors) and then bytes sent and received, and one dense
latency histogram of the current second (``seconds``). Connections increment
both inline, through the slots the runner hands them; hits are not counted
but derived (every reply lands in the histogram, so hits = replies - misses -
errors), which saves the most common increment.

Closing a second must not stall the event loop, or the stall shows up as
latency of every request in flight. A dense histogram has 5,376 buckets per
command, so the close walks it in chunks of one octave (128 buckets): an
all-zero chunk costs one slice comparison, a busy one is moved into the
phase's sparse totals and zeroed. ``close_step`` works until its deadline and
says whether it is done; the runner calls it again from the loop until it is,
so no single call blocks the loop for long (``max_block_ns`` records the
longest). Replies that land in a chunk not yet closed count in the closing
second: its edge is as sharp as the close is short (well under a millisecond).
"""

from __future__ import annotations

from time import perf_counter_ns

from pytest_memaslap.protocol.outcomes import ERROR
from pytest_memaslap.stats.histogram import BUCKET_COUNT, Histogram, bucket_index
from pytest_memaslap.stats.results import CommandStats, PhaseStats, Second

SENT = 3  # counters[SENT], after the outcome codes HIT, MISS, ERROR
RECEIVED = 4
COUNTERS = 5
CHUNK = 128  # one octave of the histogram: latencies cluster in a few of them
SECOND_NS = 1_000_000_000
_ZERO_CHUNK = [0] * CHUNK


class PhaseRecorder:
    """Counters and per-second latency histograms of one phase (preload, warm-up, measured...)."""

    __slots__ = (
        "names",
        "counters",
        "seconds",
        "totals",
        "timeline",
        "start_ns",
        "next_tick",
        "max_block_ns",
        "_errors_closed",
        "_closing",
    )

    def __init__(self, command_names: tuple[str, ...], start_ns: int) -> None:
        n = len(command_names)
        self.names = command_names
        self.counters = [[0] * COUNTERS for _ in range(n)]
        self.seconds = [[0] * BUCKET_COUNT for _ in range(n)]
        self.totals: list[dict[int, int]] = [{} for _ in range(n)]
        self.timeline: list[Second] = []
        self.start_ns = start_ns
        self.next_tick = start_ns + SECOND_NS
        self.max_block_ns = 0  # the longest single close_step: what the loop was kept from replies
        self._errors_closed = 0
        self._closing: tuple[int, int, dict[int, int], list[int]] | None = None  # position, errors, latency, ops

    def record(self, cmd: int, outcome: int, latency_ns: int, sent: int, received: int) -> None:
        """One completion (slow paths and tests; the connection inlines the same steps)."""
        self.seconds[cmd][bucket_index(latency_ns)] += 1
        counters = self.counters[cmd]
        if outcome:
            counters[outcome] += 1
        counters[SENT] += sent
        counters[RECEIVED] += received

    @property
    def closing(self) -> bool:
        return self._closing is not None

    def due(self, now_ns: int) -> bool:
        """Whether a second has ended and is not yet being closed."""
        return self._closing is None and now_ns >= self.next_tick

    def start_close(self) -> None:
        """Begin closing the current second (``close_step`` does the work)."""
        errors = sum(c[ERROR] for c in self.counters)
        self._closing = (0, errors, {}, [0])
        self.next_tick += SECOND_NS

    def close_step(self, deadline_ns: int) -> bool:
        """Close chunks of the second until ``deadline_ns``; True once the second is in the timeline."""
        started = perf_counter_ns()
        assert self._closing is not None
        position, errors, latency, ops = self._closing
        last = len(self.seconds) * BUCKET_COUNT
        while position < last:
            cmd, start = divmod(position, BUCKET_COUNT)
            second = self.seconds[cmd]
            end = start + CHUNK
            if second[start:end] != _ZERO_CHUNK:
                totals = self.totals[cmd]
                for index in range(start, end):
                    count = second[index]
                    if count:
                        latency[index] = latency.get(index, 0) + count
                        totals[index] = totals.get(index, 0) + count
                        ops[0] += count
                second[start:end] = _ZERO_CHUNK
            position += CHUNK
            if perf_counter_ns() >= deadline_ns:
                break
        self._closing = (position, errors, latency, ops)
        done = position >= last
        if done:
            self.timeline.append(Second.of(ops[0], errors - self._errors_closed, latency))
            self._errors_closed = errors
            self._closing = None
        self.max_block_ns = max(self.max_block_ns, perf_counter_ns() - started)
        return done

    def close_now(self) -> None:
        """Close the current second in one go (after the phase, when nothing waits on the loop)."""
        if self._closing is None:
            self.start_close()
        while not self.close_step(perf_counter_ns() + SECOND_NS):
            pass

    def tick(self, now_ns: int) -> None:
        """Close every second that ended by ``now_ns``, each in one go (tests and replays; the runner slices)."""
        while self.due(now_ns):
            self.close_now()

    def finish(self, end_ns: int) -> PhaseStats:
        """Build the phase's stats; the last partial second is kept if it saw anything."""
        if self._closing is not None:
            self.close_now()
        self.tick(end_ns)
        if any(any(second) for second in self.seconds):
            self.close_now()
        commands: dict[str, CommandStats] = {}
        for cmd, name in enumerate(self.names):
            _, misses, errors, sent, received = self.counters[cmd]
            latency = Histogram.from_sparse(self.totals[cmd])
            ops = latency.total
            if not ops:
                continue
            commands[name] = CommandStats(ops, ops - misses - errors, misses, errors, sent, received, latency)
        return PhaseStats(commands, self.timeline, max(0.0, (end_ns - self.start_ns) / 1e9))

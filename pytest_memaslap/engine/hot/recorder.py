"""Hot path: counts one phase's completions per command, and closes each second in one short step.

Per command there is one ``counters`` array indexed by outcome code (hits
unused, misses, errors), then bytes sent and received, then requests
abandoned by cause (counted as errors too, never as latencies), then the
exact shortest and longest latency; and one dense latency histogram of the
whole phase (``latencies``). Every command of the phase also counts into one
dense histogram of the current second (``second``). All three are C arrays
(``array.array``: ``q``, ``Q`` and ``I``), which the compiled core writes in
place, with no Python integer per increment. Connections increment them
inline, through the slots the runner hands them; hits are not counted but
derived (every reply lands in the histogram, so hits = replies - misses -
errors), which saves the most common increment.

Successive latencies are also kept in runs (``runs``: one C array per
phase, shared by its commands): from every ``stride``-th reply, the 16
replies that came one after the other, for the validity check's test of
independence (Spearman's rank correlation at lags 1 to 15). The close thins
the runs to every other one and doubles the stride once they fill half the
array, so the sample spreads over the whole phase at any rate.

Closing a second must not stall the event loop, or the stall shows up as
latency of every request in flight. So a close touches one histogram
however many commands the mix has, and only with memory scans and copies:
the second's histogram is a C array, whose occupied run is found from the
lowest and highest set bit of its bytes read as one integer, copied out and
zeroed. No Python object is read per bucket, and the cost does not depend
on where the latencies sit. ``benchmarks/close_cost.py`` measures the close;
the runner times each whole tick (``engine.periodic_us.timeline_close``). The
phase's per-command totals need no close at all: they are the dense
histograms themselves.
"""

from __future__ import annotations

import array
import sys
from collections.abc import Callable
from typing import Any

from pytest_memaslap.protocol.outcomes import ERROR, MISS
from pytest_memaslap.stats.histogram import BUCKET_COUNT, Histogram, bucket_index
from pytest_memaslap.stats.live import LIVE_CUTS, CommandTotals
from pytest_memaslap.stats.results import CommandStats, PhaseStats, Second

EdgeCounts = Callable[[Any, tuple[int, ...]], tuple[list[int], int]]  # core.edge_counts or its compiled twin
SENT = 3  # counters[SENT], after the outcome codes HIT, MISS, ERROR
RECEIVED = 4
LOST = 5  # abandoned: the connection was lost with the request in flight
TIMED_OUT = 6  # abandoned: no reply in time (a UDP datagram lost, a server that stalled)
CUT_OFF = 7  # abandoned: the run ended (failed elsewhere, or was interrupted) with the request in flight
MIN_NS = 8  # the exact shortest latency (NO_MIN until a reply came)
MAX_NS = 9  # the exact longest latency
COUNTERS = 10
# the runs array: a header (countdown to the next run, stride, values kept, room, the countdown that ends a run),
# then the runs' latencies
COUNTDOWN, STRIDE, FILL, ROOM, RUN_END, RUN_DATA = 0, 1, 2, 3, 4, 5
RUN_LENGTH = 16  # successive replies in a run: lags up to 15 can be measured
RUNS_KEPT = 512
NO_MIN = 2**62
ABANDONED = {LOST: "connection_lost", TIMED_OUT: "timeout", CUT_OFF: "run_ended"}  # the JSON's names
SECOND_NS = 1_000_000_000
_ZEROS = array.array("I", bytes(4 * BUCKET_COUNT))
_ZEROS_64 = bytes(8 * BUCKET_COUNT)
_LITTLE_ENDIAN = sys.byteorder == "little"


def _swapped(counts: array.array[int]) -> bytes:
    """The counts' bytes in little-endian order (on big-endian machines)."""
    copy = array.array("I", counts)
    copy.byteswap()
    return copy.tobytes()


def new_second() -> array.array[int]:
    """The histogram of one second, for every command: a C array the compiled core writes in place."""
    return array.array("I", _ZEROS)


def new_counters() -> array.array[int]:
    """One command's counters, before its first reply: a C array of signed 64-bit integers."""
    return array.array("q", [0] * MIN_NS + [NO_MIN, 0])


def new_runs() -> array.array[int]:
    """A phase's runs of successive latencies, empty: a C array of signed 64-bit integers (see ``keep_in_run``)."""
    runs = array.array("q", bytes(8 * (RUN_DATA + RUN_LENGTH * RUNS_KEPT)))
    runs[COUNTDOWN] = runs[STRIDE] = 1
    runs[ROOM] = RUN_LENGTH * RUNS_KEPT
    runs[RUN_END] = 1 - RUN_LENGTH
    return runs


def keep_in_run(runs: array.array[int], latency_ns: int) -> None:
    """Hot path, once a reply (slow paths; the cores inline it): the stride-th reply and the 15 after it.

    The countdown reaching 0 keeps the first of a run, and every reply is
    kept until it reaches ``RUN_END``, where it starts again from the stride.
    """
    runs[COUNTDOWN] -= 1
    if runs[COUNTDOWN] <= 0:
        fill = runs[FILL]
        if fill < runs[ROOM]:
            runs[RUN_DATA + fill] = latency_ns
            runs[FILL] = fill + 1
        if runs[COUNTDOWN] <= runs[RUN_END]:
            runs[COUNTDOWN] = runs[STRIDE]


def thin_runs(runs: array.array[int]) -> None:
    """Once half the room is used: keep every other run and double the stride (once a second at most)."""
    if runs[FILL] <= runs[ROOM] // 2:
        return
    whole = runs[FILL] // RUN_LENGTH  # (a run still being kept stays as it is, after the whole ones)
    values = runs[RUN_DATA : RUN_DATA + whole * RUN_LENGTH]
    kept = array.array("q")
    for first in range(0, len(values), 2 * RUN_LENGTH):
        kept.extend(values[first : first + RUN_LENGTH])
    partial = runs[RUN_DATA + whole * RUN_LENGTH : RUN_DATA + runs[FILL]]
    kept.extend(partial)
    runs[RUN_DATA : RUN_DATA + len(kept)] = kept
    runs[FILL] = len(kept)
    runs[STRIDE] = 2 * runs[STRIDE] + RUN_LENGTH  # (the replies between two runs' starts double)


def kept_runs(runs: array.array[int]) -> list[int]:
    """The whole runs' latencies (ns), one run after the other."""
    whole = runs[FILL] // RUN_LENGTH
    return runs[RUN_DATA : RUN_DATA + whole * RUN_LENGTH].tolist()


def new_latencies() -> array.array[int]:
    """One command's latency histogram over a phase: a C array of unsigned 64-bit counts."""
    return array.array("Q", _ZEROS_64)


def take_run(second: array.array[int]) -> tuple[int, array.array[int], int]:
    """Hot path, once a second (the twin of the compiled core's): a second's occupied buckets, moved out.

    Returns (first bucket, the run of counts from it to the last one in use,
    their sum) and zeroes that run in place. The run is found from the lowest
    and highest set bit of the histogram's bytes read as one integer: C-level
    scans, whatever the number of buckets.
    """
    raw = second.tobytes() if _LITTLE_ENDIAN else _swapped(second)
    bits = int.from_bytes(raw, "little")  # (bucket i is bits 32i to 32i+31)
    if not bits:
        return 0, array.array("I"), 0
    first = ((bits & -bits).bit_length() - 1) // 32
    end = (bits.bit_length() + 31) // 32
    counts = second[first:end]
    second[first:end] = _ZEROS[: end - first]
    return first, counts, sum(counts)


TakeRun = Callable[["array.array[int]"], tuple[int, "array.array[int]", int]]  # take_run, or the compiled one


def _hits(counters: array.array[int], ops: int) -> int:
    """Hits are not counted but derived: answered requests that were neither misses nor error replies."""
    replies_in_error = counters[ERROR] - sum(counters[index] for index in ABANDONED)
    return ops - counters[MISS] - replies_in_error


class PhaseRecorder:
    """Counters and latency histograms of one phase (preload, warm-up, measured...), and its timeline."""

    __slots__ = (
        "names",
        "counters",
        "latencies",
        "second",
        "runs",
        "timeline",
        "start_ns",
        "next_tick",
        "take_run",
        "_errors_closed",
    )

    def __init__(self, command_names: tuple[str, ...], start_ns: int, take_run: TakeRun = take_run) -> None:
        n = len(command_names)
        self.names = command_names
        self.counters = [new_counters() for _ in range(n)]
        self.latencies = [new_latencies() for _ in range(n)]  # per command, the whole phase
        self.second = new_second()  # every command, the current second (a C array: see close_second)
        self.runs = new_runs()  # every command, runs of successive latencies over the phase
        self.timeline: list[Second] = []
        self.start_ns = start_ns
        self.next_tick = start_ns + SECOND_NS
        self.take_run = take_run  # (the run's hot core's)
        self._errors_closed = 0

    def slot(self, cmd: int) -> tuple[array.array[int], array.array[int], array.array[int], array.array[int]]:
        """What a connection increments for a reply of command ``cmd``: (counters, latencies, second, runs)."""
        return self.counters[cmd], self.latencies[cmd], self.second, self.runs

    def record(self, cmd: int, outcome: int, latency_ns: int, sent: int, received: int) -> None:
        """One completion (slow paths and tests; the connection inlines the same steps)."""
        index = bucket_index(latency_ns)
        self.latencies[cmd][index] += 1
        self.second[index] += 1
        counters = self.counters[cmd]
        if outcome:
            counters[outcome] += 1
        counters[SENT] += sent
        counters[RECEIVED] += received
        if latency_ns > counters[MAX_NS]:
            counters[MAX_NS] = latency_ns
        if latency_ns < counters[MIN_NS]:
            counters[MIN_NS] = latency_ns
        keep_in_run(self.runs, latency_ns)

    def due(self, now_ns: int) -> bool:
        """Whether the current second has ended."""
        return now_ns >= self.next_tick

    def close_second(self) -> None:
        """Hot path, once a second: move the second's histogram into the timeline and zero it.

        ``take_run`` finds the histogram's occupied run, copies it out and
        zeroes it: memory scans and copies, wherever the latencies sit, with
        no Python object per bucket (compiled: a few µs; this module's twin:
        about 25 µs).
        """
        offset, counts, total = self.take_run(self.second)
        errors = sum(c[ERROR] for c in self.counters)
        self.timeline.append(Second(total, errors - self._errors_closed, offset, counts))
        self._errors_closed = errors
        thin_runs(self.runs)
        self.next_tick += SECOND_NS

    def tick(self, now_ns: int) -> None:
        """Close every second that ended by ``now_ns`` (tests and replays; the runner closes from a timer)."""
        while self.due(now_ns):
            self.close_second()

    def totals(self, edge_counts: EdgeCounts) -> dict[str, CommandTotals]:
        """Every command's running totals, for a live exporter (``edge_counts``: the run's hot core's)."""
        totals: dict[str, CommandTotals] = {}
        for cmd, name in enumerate(self.names):
            counters = self.counters[cmd]
            at_cuts, latency_sum_ns = edge_counts(self.latencies[cmd], LIVE_CUTS)
            ops = at_cuts[-1]  # (the last cut takes every bucket)
            errors = counters[ERROR]
            if not ops and not errors:
                continue
            misses, sent, received = counters[MISS], counters[SENT], counters[RECEIVED]
            hits = _hits(counters, ops)
            totals[name] = CommandTotals(ops, errors, hits, misses, sent, received, tuple(at_cuts), latency_sum_ns)
        return totals

    def finish(self, end_ns: int) -> PhaseStats:
        """Build the phase's stats; the last partial second is kept if it saw anything."""
        self.tick(end_ns)
        if any(self.second):
            self.close_second()
        commands: dict[str, CommandStats] = {}
        for cmd, name in enumerate(self.names):
            counters = self.counters[cmd]
            _, misses, errors, sent, received = counters[:LOST]
            abandoned = {cause: counters[index] for index, cause in ABANDONED.items() if counters[index]}
            latency = Histogram(self.latencies[cmd].tolist())
            ops = latency.total  # answered requests only: the histogram holds no abandoned one
            if not ops and not abandoned:
                continue
            exact = (counters[MIN_NS], counters[MAX_NS]) if ops else (0, 0)
            commands[name] = CommandStats(
                ops, _hits(counters, ops), misses, errors, sent, received, latency, abandoned, *exact
            )
        return PhaseStats(commands, self.timeline, max(0.0, (end_ns - self.start_ns) / 1e9))

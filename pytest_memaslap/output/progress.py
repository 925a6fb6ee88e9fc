"""Live progress of long runs: a line every few seconds, like memaslap's -S.

In one process the measured seconds go straight to a line on the terminal.
Under pytest-xdist the workers cannot write to the controller's terminal, so
each worker publishes its latest period as a small record on the memcached
server (which every shard reaches, on any machine), and the controller polls
those records once a second and prints one line per period, merged over the
shards that ran it. Progress is best effort: a failed publish or poll never
fails a run. The live metrics (``--slap-prometheus``) travel the same way,
as records of their own (``live_key``).
"""

from __future__ import annotations

import array
import json
import queue
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pymemcache.exceptions import MemcacheError

from pytest_memaslap.memcached.control import control_client
from pytest_memaslap.memcached.sasl import SaslCredentials, SaslError
from pytest_memaslap.stats.live import Totals
from pytest_memaslap.stats.results import Second

POLL_INTERVAL_S = 1.0
RECORD_TTL_S = 120
CLIENT_TIMEOUT_S = 1.0
PUBLISHER_IDLE_S = 0.5  # a publisher thread with nothing queued this long ends
PRELOAD_EVERY_S = 5  # a preload longer than this shows a progress line this often
GRACE_POLLS = 3  # a period still missing shards is printed with those it has after this many polls


@dataclass
class Period:
    """``seconds`` seconds of a measured phase, ending ``done`` seconds into it; ``sums`` adds them up."""

    label: str
    done: int
    total: float | None
    seconds: int
    sums: Second = field(default_factory=Second)  # ops, errors and latencies of those seconds
    shards: int = 1  # how many shards run this test
    merged: int = 1  # how many shards' periods this one holds
    progress: tuple[int, int] | None = None  # a preload's (requests answered so far, requests it will send)

    @property
    def ops(self) -> int:
        return self.sums.ops

    @property
    def errors(self) -> int:
        return self.sums.errors

    def merge(self, other: Period) -> None:
        """Add another shard's same period (shards run side by side: ops add up, the seconds do not)."""
        self.sums.merge(other.sums)
        self.merged += other.merged
        if self.progress is not None and other.progress is not None:
            self.progress = (self.progress[0] + other.progress[0], self.progress[1] + other.progress[1])

    def line(self) -> str:
        if self.progress is not None:
            return self._progress_line(self.progress)
        total = f"/{self.total:g}" if self.total else ""
        p99_ms = self.sums.percentile(99.0) / 1e6
        shards = f", {self.merged} of {self.shards} shards" if self.shards > 1 else ""
        return (
            f"slap {self.label}: {self.done}{total} s, {self.ops / max(1, self.seconds):,.0f} ops/s, "
            f"p99 {p99_ms:.3g} ms, errors {self.errors} (last {self.seconds} s{shards})"
        )

    def _progress_line(self, progress: tuple[int, int]) -> str:
        """A long preload: how far it is, and how fast it goes."""
        answered, planned = progress
        shards = f", {self.merged} of {self.shards} shards" if self.shards > 1 else ""
        share = 100 * answered / max(planned, 1)
        return (
            f"slap {self.label}: {self.done} s, {answered:,} of {planned:,} sets ({share:.0f} %)"
            f", {self.ops / max(1, self.seconds):,.0f} sets/s, errors {self.errors} (last {self.seconds} s{shards})"
        )

    def to_json(self) -> str:
        data = {
            "label": self.label,
            "done": self.done,
            "total": self.total,
            "seconds": self.seconds,
            "ops": self.ops,
            "errors": self.errors,
            "offset": self.sums.offset,
            "counts": self.sums.counts.tolist(),
            "shards": self.shards,
            "progress": self.progress,
        }
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> Period:
        data = json.loads(text)
        counts = array.array("I", [int(count) for count in data["counts"]])
        sums = Second(int(data["ops"]), int(data["errors"]), int(data["offset"]), counts)
        progress = data.get("progress")
        return cls(
            str(data["label"]),
            int(data["done"]),
            data["total"],
            int(data["seconds"]),
            sums,
            int(data["shards"]),
            progress=(int(progress[0]), int(progress[1])) if progress else None,
        )


class ProgressPrinter:
    """Adds up the measured phase's seconds and hands a Period to ``emit`` every ``every_s`` of them.

    Called on the load's event loop once a second: it adds that one second
    (C-level, about 20 µs) rather than all of a period's seconds at its end,
    so no call keeps the loop from replies for long.
    """

    def __init__(
        self, emit: Callable[[Period], None], label: str, total_s: float | None, every_s: int, shards: int = 1
    ) -> None:
        self.emit = emit
        self.label = label
        self.total = total_s
        self.every = every_s
        self.shards = shards
        self._sums = Second()
        self._seconds = 0

    def __call__(self, done: int, second: Second, totals: Totals | None = None) -> None:
        self._sums.merge(second)
        self._seconds += 1
        if done % self.every:
            return
        self.emit(Period(self.label, done, self.total, self._seconds, self._sums, self.shards))
        self._sums, self._seconds = Second(), 0


class PreloadPrinter:
    """An ``OnPreload``: a progress line every ``every_s`` seconds of a preload (a short one shows none)."""

    def __init__(
        self, emit: Callable[[Period], None], label: str, every_s: int = PRELOAD_EVERY_S, shards: int = 1
    ) -> None:
        self.emit = emit
        self.label = label
        self.every = every_s
        self.shards = shards
        self._last = (0, 0)  # (sets answered, errors) at the last line

    def __call__(self, done: int, answered: int, planned: int, errors: int) -> None:
        if not done or done % self.every:
            return
        sums = Second(answered - self._last[0], errors - self._last[1])
        self._last = (answered, errors)
        self.emit(Period(self.label, done, None, self.every, sums, self.shards, progress=(answered, planned)))


def stat_freq(option: int | None, duration: float | None) -> int:
    """Seconds between lines: the option when given (0 is off), else 5 s for runs of 10 s or more."""
    if option is not None:
        return option
    return 5 if duration is not None and duration >= 10 else 0


def progress_key(token: str, worker: str) -> str:
    """Where a worker's latest period lives on the server: scoped to the run, one key per worker."""
    return f"slap{token}_progress_{worker}"


def live_key(token: str, worker: str) -> str:
    """Where a worker's latest live snapshot lives (``--slap-prometheus``), beside its progress."""
    return f"slap{token}_live_{worker}"


class Record(Protocol):
    """What a publisher stores: anything that writes itself as JSON (a Period, a live snapshot)."""

    def to_json(self) -> str: ...


class ProgressPublisher:
    """A worker's ``emit``: stores the latest record under its key on the server, from a thread of its own.

    Storing it connects to the server and waits for the reply; on the event
    loop that wait would be added to every request in flight. So the loop
    only queues the period, and a thread publishes it; the thread ends when
    nothing has been queued for a while, and starts again with the next one.
    """

    def __init__(
        self, host: str, port: int, key: str, tls: ssl.SSLContext | None = None, sasl: SaslCredentials | None = None
    ) -> None:
        self.host, self.port, self.key, self.tls, self.sasl = host, port, key, tls, sasl
        self._queued: queue.SimpleQueue[Record] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def __call__(self, record: Record) -> None:
        self._queued.put(record)
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="slap-progress-publisher", daemon=True)
                self._thread.start()

    def flush(self, timeout_s: float = 2 * CLIENT_TIMEOUT_S) -> None:
        """Wait (bounded) until what was queued is published: the last period of a run is not lost."""
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            try:
                record = self._queued.get(timeout=PUBLISHER_IDLE_S)
            except queue.Empty:
                with self._lock:
                    if self._queued.empty():
                        self._thread = None
                        return
                continue
            self._publish(record)

    def _publish(self, record: Record) -> None:
        client = control_client(self.host, self.port, CLIENT_TIMEOUT_S, self.tls, self.sasl)
        try:
            client.set(self.key, record.to_json(), expire=RECORD_TTL_S, noreply=False)
        except (OSError, MemcacheError, SaslError):
            pass  # progress is best effort; the run itself reports any real trouble
        finally:
            client.close()


class RecordPoller:
    """The reading side (xdist controller, memaslap-py): polls the shards' records once a second, in a thread.

    ``take`` gets what each poll read, by key: progress periods to merge and
    print, live snapshots to serve.
    """

    def __init__(
        self,
        host: str,
        port: int,
        take: Callable[[dict[str, Any]], None],
        tls: ssl.SSLContext | None = None,
        sasl: SaslCredentials | None = None,
    ) -> None:
        self.host, self.port, self.tls, self.sasl = host, port, tls, sasl
        self.take = take
        self.keys: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, key: str) -> None:
        if key not in self.keys:
            self.keys.append(key)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="slap-progress", daemon=True)
            self._thread.start()

    def stop(self, last_look: bool = False) -> None:
        """Stop polling; ``last_look`` reads the records once more (a last second published since the last poll)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2 * CLIENT_TIMEOUT_S + POLL_INTERVAL_S)
        if last_look and self.keys:
            client = control_client(self.host, self.port, CLIENT_TIMEOUT_S, self.tls, self.sasl)
            try:
                self.take(client.get_many(list(self.keys)))
            except (OSError, MemcacheError, SaslError):
                pass  # best effort, as every poll
            finally:
                client.close()

    def _run(self) -> None:
        client = control_client(self.host, self.port, CLIENT_TIMEOUT_S, self.tls, self.sasl)
        try:
            while not self._stop.wait(POLL_INTERVAL_S):
                try:
                    records = client.get_many(list(self.keys))
                except (OSError, MemcacheError, SaslError):
                    client.close()  # reconnects on the next poll
                    continue
                self.take(records)
        finally:
            client.close()


class ProgressPoller(RecordPoller):
    """Reads the shards' periods and emits each merged over its shards."""

    def __init__(
        self,
        host: str,
        port: int,
        emit: Callable[[Period], None],
        tls: ssl.SSLContext | None = None,
        sasl: SaslCredentials | None = None,
    ) -> None:
        super().__init__(host, port, self._merge, tls, sasl)
        self.emit = emit
        self._seen: dict[str, tuple[str, int]] = {}  # key -> (label, done) last taken from it
        self._pending: dict[tuple[str, int], tuple[Period, int]] = {}  # (label, done) -> (merged, polls waited)

    def stop(self, last_look: bool = False) -> None:
        """Stop polling; with ``last_look``, read once more and print every period still waiting (the last one,
        which the shards published as they ended)."""
        super().stop(last_look)
        if last_look:
            for _, (period, _) in sorted(self._pending.items(), key=lambda item: item[0][1]):
                self.emit(period)
            self._pending.clear()

    def _merge(self, records: dict[str, Any]) -> None:
        """Merge new records into their periods; print each period once all its shards are in (or it waited)."""
        for key, raw in records.items():
            try:
                period = Period.from_json(raw)
            except (ValueError, KeyError, TypeError):
                continue
            ident = (period.label, period.done)
            if self._seen.get(key) == ident:
                continue
            self._seen[key] = ident
            if ident in self._pending:
                self._pending[ident][0].merge(period)
            else:
                self._pending[ident] = (period, 0)
        for ident, (period, waited) in sorted(self._pending.items(), key=lambda item: item[0][1]):
            if period.merged >= period.shards or waited >= GRACE_POLLS:
                self.emit(period)
                del self._pending[ident]
            else:
                self._pending[ident] = (period, waited + 1)

"""The memcached a benchmark loads: a fresh one per run, every thread pinned, and its own CPU per request.

Shared by ``vs_memaslap.py``, ``kernel_batching.py`` and ``sizing.py``, so
that every benchmark measures the server the same way: memcached -t 1 pinned
to the first CPU (all its threads), the load on the second, and memcached's
CPU per request read from its own ``stats`` (``rusage_user`` and
``rusage_system``).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import time
from collections.abc import Callable, Iterator


def pin_process(pid: int, cpus: set[int]) -> None:
    """Pin every thread of a running process (``sched_setaffinity`` on a pid moves its main thread only, and
    memcached's workers are other threads, started before it could be pinned)."""
    for task in os.listdir(f"/proc/{pid}/task"):
        os.sched_setaffinity(int(task), cpus)


class Servers:
    """The memcached every run loads: one for the whole benchmark, or a fresh one for each run (``fresh``).

    A fresh server per run means no run inherits what the runs before it left
    (items, the hash table's size and chains, the slabs' free lists), which
    otherwise favours whichever tool runs against the emptier server.
    memcached -t 1 is pinned to the first CPU when there are two or more.
    """

    def __init__(self, fresh: bool) -> None:
        self.fresh = fresh
        cpus = sorted(os.sched_getaffinity(0))
        self.server_cpu = cpus[0] if len(cpus) >= 2 else None
        self.load_cpu = {cpus[1]} if len(cpus) >= 2 else None
        self._shared = None if fresh else self._start()

    def _start(self):  # type: ignore[no-untyped-def]
        from pytest_memaslap.memcached.server import ServerConfig, start_server

        server = start_server(ServerConfig(threads=1, memory_mb=1024))
        if self.server_cpu is not None and server.process is not None:
            pin_process(server.process.pid, {self.server_cpu})
        return server

    def describe(self) -> str:
        server = self._shared or self._start()
        try:
            pinned = f"pinned to CPU {self.server_cpu}" if self.server_cpu is not None else "not pinned (one CPU)"
            every = "a fresh one for every run" if self.fresh else f"one for all runs, {server.address}"
            return f"memcached {server.version} -t 1 ({every}), {pinned}"
        finally:
            if self._shared is None:
                server.stop()

    @contextlib.contextmanager
    def serve(self) -> Iterator[tuple[str, int]]:
        server = self._shared or self._start()
        try:
            yield server.host, server.port
        finally:
            if self._shared is None:
                server.stop()

    def close(self) -> None:
        if self._shared is not None:
            self._shared.stop()


def server_cpu(host: str, port: int) -> Callable[[], tuple[float, int]]:
    """Reads memcached's CPU seconds (user + system) and the requests it answered, from its ``stats``."""
    from pytest_memaslap.memcached.sampler import TextStats

    reader = TextStats(host, port, None)

    def read() -> tuple[float, int]:
        values = reader.sample()
        requests = sum(int(values.get(name, 0)) for name in ("cmd_get", "cmd_set"))
        return values["rusage_user"] + values["rusage_system"], requests

    return read


class ServerWatch:
    """memcached's CPU while it serves the load, from its ``stats`` every 0.2 s in a thread of its own.

    ``server_busy`` (its CPU seconds per second) and ``server_us_per_op`` (its
    CPU µs per get or set) are taken over the intervals where gets are at least 80 % of
    its requests: the measured load (9:1), not a tool's fill or preload (sets
    only) nor its cleanup (deletes), less the first and last such interval.
    A server near 1.0 busy is the bottleneck, and then ops/s is the inverse
    of its CPU per request: what a load tool changes is that cost.
    """

    def __init__(self, host: str, port: int) -> None:
        from pytest_memaslap.memcached.sampler import TextStats

        self._reader = TextStats(host, port, None)
        self._samples: list[tuple[float, float, int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="server-watch", daemon=True)

    def __enter__(self) -> ServerWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            values = self._reader.sample()
            cpu = values["rusage_user"] + values["rusage_system"]
            self._samples.append((time.monotonic(), cpu, int(values["cmd_get"]), int(values["cmd_set"])))
            self._stop.wait(0.2)

    def figures(self) -> dict[str, float]:
        steady = []
        for (t1, cpu1, gets1, sets1), (t2, cpu2, gets2, sets2) in itertools.pairwise(self._samples):
            gets, sets = gets2 - gets1, sets2 - sets1
            if gets + sets and gets >= 0.8 * (gets + sets):
                steady.append((t2 - t1, cpu2 - cpu1, gets + sets))
        steady = steady[1:-1]
        if not steady:
            return {}
        seconds = sum(interval[0] for interval in steady)
        cpu = sum(interval[1] for interval in steady)
        requests = sum(interval[2] for interval in steady)
        return {"server_busy": cpu / seconds, "server_us_per_op": cpu / requests * 1e6}

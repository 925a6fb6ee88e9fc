"""A measurement probe (mutilate's ``-Q`` agent): gets at a low Poisson rate, from a process of its own.

The load's connections queue on the client side: their requests wait in
their window, and every reply waits for the event loop, which is busy with
the others. A probe beside them on the same loop waits for it too (measured:
its median 2.2 times the load's own, at 16 connections x 8 in flight). So
the probe is a process of its own, with one blocking connection, one get at
a time at Poisson instants, each timed from its send to its reply: the
latency an idle client sees beside the load (measured: its median 70 µs
where the load's was 265 µs at 16 connections x 8 in flight, and 96 µs at
window 1; timed from the intended instant instead, it was 800 µs, as its
process waited for a core on a machine the load kept busy). It runs through
the measured phase; its requests are a phase of their own (``probe``) and
count in no other statistic. ASCII protocol (over TLS too).
"""

from __future__ import annotations

import multiprocessing
import random
import socket
import ssl
import time
from multiprocessing.connection import Connection as Pipe
from typing import Any

from pytest_memaslap.stats.histogram import Histogram
from pytest_memaslap.stats.results import CommandStats, PhaseStats

KEYS_SENT = 1_000  # keys of the shard's keyspace the probe gets, drawn evenly
START_TIMEOUT_S = 30.0  # how long the probe process may take to start and connect
REPLY_TIMEOUT_S = 5.0  # a get unanswered this long is an error, and the probe goes on
RESULT_TIMEOUT_S = 10.0  # how long the probe may take to hand its results back


class ProbeError(Exception):
    """The probe could not start or answer: the message says why."""


class ProbeProcess:
    """The parent's handle: start the process (before the load), ``begin`` and ``end`` the measured phase."""

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None, rate: float, seed: str) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipe, child = context.Pipe()
        secure = tls is not None
        self.process = context.Process(
            target=_probe_main, args=(child, host, port, secure, rate, seed), name="pytest-memaslap probe", daemon=True
        )
        self.process.start()
        child.close()
        if not self.pipe.poll(START_TIMEOUT_S):
            self.close()
            raise ProbeError(f"the probe process did not connect to {host}:{port} within {START_TIMEOUT_S:g} s")
        try:
            ready = self.pipe.recv()
        except EOFError:
            ready = f"its process ended (exit status {self.process.exitcode})"
        if ready != "ready":
            self.close()
            raise ProbeError(f"the probe could not connect to {host}:{port}: {ready}")
        self.started = False

    def begin(self, keys: list[bytes]) -> None:
        """The measured phase began: gets of ``keys`` from now on."""
        step = max(1, len(keys) // KEYS_SENT)
        self.pipe.send(("begin", keys[::step][:KEYS_SENT]))
        self.started = True

    def end(self) -> PhaseStats | None:
        """The measured phase is over: the probe's statistics (None when it never began)."""
        if not self.started:
            return None
        self.started = False
        self.pipe.send(("end", None))
        if not self.pipe.poll(RESULT_TIMEOUT_S + REPLY_TIMEOUT_S):
            raise ProbeError(f"the probe gave no result within {RESULT_TIMEOUT_S + REPLY_TIMEOUT_S:g} s")
        data: dict[str, Any] = self.pipe.recv()
        latency = Histogram.from_sparse({int(k): int(v) for k, v in data["latency"].items()})
        stats = CommandStats(
            ops=data["ops"],
            hits=data["hits"],
            misses=data["misses"],
            errors=data["errors"],
            bytes_sent=data["bytes_sent"],
            bytes_received=data["bytes_received"],
            latency=latency,
            min_ns=data["min_ns"],
            max_ns=data["max_ns"],
        )
        return PhaseStats({"get": stats}, [], data["elapsed_s"])

    def close(self) -> None:
        """Stop the process (it also stops when this end of its pipe closes); never leaves it behind."""
        try:
            self.pipe.send(("quit", None))
        except (OSError, ValueError):
            pass
        self.pipe.close()
        self.process.join(2.0)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(2.0)


def _probe_main(pipe: Pipe, host: str, port: int, secure: bool, rate: float, seed: str) -> None:
    """The probe process: connect, wait for ``begin``, get at Poisson instants until ``end``, send the results."""
    try:
        sock = socket.create_connection((host, port), timeout=REPLY_TIMEOUT_S)
        if secure:
            context = ssl.create_default_context()
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # (the load's context checked it)
            sock = context.wrap_socket(sock)
    except OSError as exc:
        pipe.send(str(exc))
        return
    pipe.send("ready")
    while True:
        try:
            command, keys = pipe.recv()
        except EOFError:
            return
        if command != "begin":
            return
        pipe.send(_measure(pipe, sock, keys, rate, random.Random(seed)))


def _measure(pipe: Pipe, sock: socket.socket, keys: list[bytes], rate: float, rng: random.Random) -> dict[str, Any]:
    """Gets at Poisson instants until the parent says ``end``; each timed from its send to its whole reply
    (the probe waits for nothing of its own, so nothing of the client's queueing is in it; how late its
    process woke to send is the machine's, and left out)."""
    latency = Histogram()
    counts = {"ops": 0, "hits": 0, "misses": 0, "errors": 0, "bytes_sent": 0, "bytes_received": 0}
    low, high = 0, 0
    started = time.perf_counter_ns()
    due = started
    while not pipe.poll(0):
        due += int(rng.expovariate(rate) * 1e9)
        while True:  # (sleep to the instant, a little at a time, so ``end`` is heard)
            wait = (due - time.perf_counter_ns()) / 1e9
            if wait <= 0 or pipe.poll(min(wait, 0.05)):
                break
        if pipe.poll(0):
            break
        request = b"get " + keys[rng.randrange(len(keys))] + b"\r\n"
        sent = time.perf_counter_ns()
        try:
            sock.sendall(request)
            reply = _reply(sock)
        except OSError:
            counts["errors"] += 1
            continue
        took = time.perf_counter_ns() - sent
        counts["bytes_sent"] += len(request)
        counts["bytes_received"] += len(reply)
        if reply.startswith(b"VALUE"):
            counts["hits"] += 1
        elif reply == b"END\r\n":
            counts["misses"] += 1
        else:
            counts["errors"] += 1
            continue
        counts["ops"] += 1
        latency.record(took)
        low, high = (took if not low else min(low, took)), max(high, took)
    pipe.recv()  # (the ``end``)
    sparse = {index: count for index, count in enumerate(latency.counts) if count}
    elapsed = (time.perf_counter_ns() - started) / 1e9
    return {**counts, "latency": sparse, "min_ns": low, "max_ns": high, "elapsed_s": elapsed}


def _reply(sock: socket.socket) -> bytes:
    """One get's whole reply: ``END`` alone, or a value and ``END``."""
    data = b""
    while True:
        chunk = sock.recv(1 << 16)
        if not chunk:
            raise OSError("the server closed the probe's connection")
        data += chunk
        if data.endswith(b"END\r\n") and (data.startswith(b"VALUE") or data == b"END\r\n"):
            if not data.startswith(b"VALUE"):
                return data
            header, _, rest = data.partition(b"\r\n")
            size = int(header.split(b" ")[3])
            if len(rest) >= size + 7:
                return data
        elif data.startswith((b"SERVER_ERROR", b"CLIENT_ERROR", b"ERROR")) and data.endswith(b"\r\n"):
            return data

#!/usr/bin/env python3
"""Does batching the kernel work (io_uring) lower a load tool's CPU per request? The prototype's answer.

``kernel_batching.c`` is one small closed-loop memcached client in C with two
ways to reach the kernel: ``epoll`` (a read and a write per request, as every
event-loop client does) and ``uring`` (the sends and receives of every
connection submitted, and their completions reaped, in one ``io_uring_enter``).
The request stream, parser and refill are the same code, so the difference
between its two modes is what batching the system calls saves. This script
builds it (``cc``, liburing: ``apt-get install liburing-dev``) in a temporary
folder and runs both modes beside memcaslap, memtier_benchmark (when on PATH)
and our compiled hot path, each run on a freshly started memcached -t 1, alternating, at the two shapes
of ``vs_memaslap.py``: window 1 × 32 connections and 8 connections × 16 in
flight, memcached pinned to one CPU and the load to the other. Pipelined, a
third mode, ``epoll-coalesce``, waits 30 µs once woken before it reads (the
experiment behind the pipelined gap: docs/speed.md). It prints the same table
as ``vs_memaslap.py``, then the prototype's system calls per request.

    python benchmarks/kernel_batching.py [--duration 4] [--rounds 3]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import vs_memaslap  # noqa: E402  (the shapes, the peers and the side-by-side table)
from server_under_test import Servers  # noqa: E402  (a fresh, pinned memcached for every run)

SOURCE = Path(__file__).resolve().parent / "kernel_batching.c"


def build(folder: str) -> str:
    """Compile the prototype; exit with what to install when the compiler or liburing is missing."""
    compiler = shutil.which(os.environ.get("CC", "cc"))
    if compiler is None:
        raise SystemExit("no C compiler: apt-get install gcc")
    binary = os.path.join(folder, "kernel_batching")
    done = subprocess.run(
        [compiler, "-O2", "-Wall", "-o", binary, str(SOURCE), "-luring"], capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise SystemExit(f"could not build the prototype (liburing: apt-get install liburing-dev):\n{done.stderr}")
    return binary


def prototype(
    binary: str, mode: str, host: str, port: int, duration: float, connections: int, window: int, cpus: set[int] | None
) -> dict[str, float]:
    """One run of the prototype in ``mode``: ops/s and CPU per request of its measured phase, system calls too."""
    prefix = f"kb{os.getpid()}:"
    command = [binary, host, str(port), mode, str(connections), str(window), str(duration), str(vs_memaslap.KEYS)]
    pin = vs_memaslap._pin(cpus)
    pipe = subprocess.PIPE
    process = subprocess.Popen(command + [prefix], stdout=pipe, stderr=subprocess.STDOUT, text=True, preexec_fn=pin)
    out, _ = vs_memaslap._wait_with_rusage(process, duration + 120)
    figures = json.loads(out)
    ops = max(figures["ops"], 1)
    if figures["hits"] != figures["gets"]:
        raise SystemExit(f"the prototype's gets missed ({figures['hits']} hits of {figures['gets']}): not the shape")
    return {
        "ops_per_sec": figures["ops"] / figures["seconds"],
        "user_us_per_op": figures["user_s"] / ops * 1e6,
        "system_us_per_op": figures["system_s"] / ops * 1e6,
        "syscalls_per_op": figures["syscalls"] / ops,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per run (default 4)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--memcaslap", default=shutil.which("memcaslap") or shutil.which("memaslap") or "memcaslap")
    parser.add_argument("--memtier", default="memtier_benchmark", help="memtier_benchmark binary (run when found)")
    parser.add_argument("--shared-server", action="store_true", help="one memcached for all runs (default: fresh)")
    args = parser.parse_args()
    if not shutil.which(args.memcaslap):
        raise SystemExit("memcaslap not found: sudo apt-get install libmemcached-tools")

    with tempfile.TemporaryDirectory(prefix="kernel-batching-") as folder:
        binary = build(folder)
        servers = Servers(fresh=not args.shared_server)
        duration, load_cpu = args.duration, servers.load_cpu
        try:
            print(f"{servers.describe()}; {args.rounds} rounds of {duration:g} s")
            for title, connections, window in (
                ("window 1 x 32 connections, load pinned", 32, 1),
                ("pipelined: 8 connections x 16 in flight, load pinned", 8, 16),
            ):
                runs: dict[str, vs_memaslap.Run] = {}
                if window == 1:
                    runs["memcaslap"] = functools.partial(
                        vs_memaslap.memaslap, args.memcaslap, duration=duration, threads=1, cpus=load_cpu
                    )
                if shutil.which(args.memtier):
                    runs["memtier"] = functools.partial(
                        vs_memaslap.memtier, args.memtier, duration=duration, threads=1, cpus=load_cpu
                    )
                    runs["memtier"] = functools.partial(runs["memtier"], connections=connections, pipeline=window)
                shape = {"duration": duration, "window": window, "cpus": load_cpu, "connections": connections}
                runs["compiled"] = functools.partial(vs_memaslap.ours, shards=1, implementation="compiled", **shape)
                modes = ("epoll", "uring") + (("epoll-coalesce",) if window > 1 else ())
                calls: dict[str, list[float]] = {f"C {mode}": [] for mode in modes}
                for mode in modes:
                    client = functools.partial(prototype, binary, mode, **shape)
                    runs[f"C {mode}"] = _recording(client, calls[f"C {mode}"])
                vs_memaslap.compare(title, args.rounds, runs, servers)
                print(
                    "system calls per request (medians): "
                    + ", ".join(f"{name} {sorted(values)[len(values) // 2]:.2f}" for name, values in calls.items())
                    + "\n"
                )
        finally:
            servers.close()


def _recording(run: vs_memaslap.Run, into: list[float]) -> vs_memaslap.Run:
    def recorded(host: str, port: int) -> dict[str, float]:
        figures = run(host, port)
        into.append(figures["syscalls_per_op"])
        return figures

    return recorded


if __name__ == "__main__":
    main()

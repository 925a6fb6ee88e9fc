#!/usr/bin/env python3
"""Our engine and memcaslap side by side on one memcached, same workload shape.

Shape (memaslap's defaults): 32 connections, window 1 (closed loop), 90 % get /
10 % set, 64-byte keys, 1024-byte values, a ~96k keyspace filled before gets
(memaslap: -c 32 -w 3k fills 32 x 3k keys; ours: keys=96000, preload=True).
One load process each (ours: one shard; memcaslap: -T 1) against memcached -t 1,
alternating, several rounds. With two or more CPUs, memcached is pinned to the
first and the load process to the second, so both tools get the same CPU budget
and neither competes with the server for a core. Prints ops/s, CPU µs per op and the ratio, then
our ops/s with window 16.

    python benchmarks/vs_memaslap.py [--duration 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time

CONNECTIONS = 32
KEYS = 96_000


def run_child(host: str, port: int, duration: float, window: int) -> None:
    """In the child process: run one shard, print its numbers as JSON."""
    from pytest_memaslap import Target, Workload, run_shard

    workload = Workload.from_args(
        {
            "duration": duration,
            "connections": CONNECTIONS,
            "window": window,
            "keys": KEYS,
            "key_size": 64,
            "value_size": 1024,
            "commands": {"get": 0.9, "set": 0.1},
            "preload": True,
        }
    )
    before = resource.getrusage(resource.RUSAGE_SELF)
    result = run_shard(workload, Target(host, port), f"bench{os.getpid()}:")
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    measured = result.measured
    print(
        json.dumps(
            {
                "ops": measured.ops,
                "seconds": measured.elapsed_s,
                "requests": result.requests_sent,
                "cpu_s": cpu,
                "errors": sum(c.errors for c in measured.commands.values()),
                "get_misses": measured.commands["get"].misses,
            }
        )
    )


def _wait_with_rusage(process: subprocess.Popen[str], timeout: float) -> tuple[str, float]:
    """Wait for a child (bounded) and return its stdout and CPU seconds (user + system)."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            process.kill()
            raise SystemExit(f"{process.args!r} did not finish within {timeout:.0f} s")
        time.sleep(0.05)
    process.returncode = os.waitstatus_to_exitcode(status)
    out = process.stdout.read() if process.stdout else ""
    if process.returncode != 0:
        raise SystemExit(f"{process.args!r} failed ({process.returncode}):\n{out}")
    return out, usage.ru_utime + usage.ru_stime


LOAD_CPU: set[int] | None = None


def _pin_load() -> None:
    if LOAD_CPU:
        os.sched_setaffinity(0, LOAD_CPU)


def ours(host: str, port: int, duration: float, window: int) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", host, str(port), str(duration), str(window)]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=_pin_load
    )
    out, _ = _wait_with_rusage(process, duration + 120)
    data = json.loads(out.strip().splitlines()[-1])
    if data["errors"]:
        raise SystemExit(f"our engine saw {data['errors']} errors")
    return {
        "ops_per_sec": data["ops"] / data["seconds"],
        "cpu_us_per_op": data["cpu_s"] / data["requests"] * 1e6,
        "get_misses": data["get_misses"],
    }


def memaslap(binary: str, host: str, port: int, duration: float) -> dict[str, float]:
    command = [binary, "-s", f"{host}:{port}", "-T", "1", "-c", str(CONNECTIONS), "-w", "3k", "-t", f"{int(duration)}s"]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=_pin_load
    )
    out, cpu = _wait_with_rusage(process, duration + 120)
    match = re.search(r"Run time: ([\d.]+)s Ops: (\d+) TPS: (\d+)", out)
    if not match:
        raise SystemExit(f"could not read memcaslap's report:\n{out}")
    ops = int(match.group(2))
    return {"ops_per_sec": float(match.group(3)), "cpu_us_per_op": cpu / ops * 1e6}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _, _, host, port, duration, window = sys.argv
        run_child(host, int(port), float(duration), int(window))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--memcaslap", default=shutil.which("memcaslap") or shutil.which("memaslap") or "memcaslap")
    args = parser.parse_args()
    if not shutil.which(args.memcaslap):
        raise SystemExit("memcaslap not found: sudo apt-get install libmemcached-tools")

    from tabulate import tabulate

    from pytest_memaslap.server import ServerConfig, start_server

    global LOAD_CPU
    server = start_server(ServerConfig(threads=1, memory_mb=1024))
    cpus = sorted(os.sched_getaffinity(0))
    pinning = "not pinned (one CPU)"
    if len(cpus) >= 2 and server.process is not None:
        os.sched_setaffinity(server.process.pid, {cpus[0]})
        LOAD_CPU = {cpus[1]}
        pinning = f"memcached on CPU {cpus[0]}, load on CPU {cpus[1]}"
    rows = []
    try:
        print(
            f"memcached {server.version} -t 1 on {server.address}; {pinning}; "
            f"{args.rounds} rounds of {args.duration:g} s"
        )
        for round_no in range(1, args.rounds + 1):
            theirs = memaslap(args.memcaslap, server.host, server.port, args.duration)
            mine = ours(server.host, server.port, args.duration, window=1)
            ratio = mine["ops_per_sec"] / theirs["ops_per_sec"]
            rows.append((round_no, theirs, mine, ratio))
            print(
                f"round {round_no}: memcaslap {theirs['ops_per_sec']:,.0f} ops/s, "
                f"ours {mine['ops_per_sec']:,.0f} ops/s, ratio {ratio:.2f}"
            )
        window16 = ours(server.host, server.port, args.duration, window=16)
    finally:
        server.stop()

    table = [
        (
            r,
            f"{t['ops_per_sec']:,.0f}",
            f"{t['cpu_us_per_op']:.2f}",
            f"{m['ops_per_sec']:,.0f}",
            f"{m['cpu_us_per_op']:.2f}",
            f"{ratio:.2f}x",
        )
        for r, t, m, ratio in rows
    ]
    table.append(
        (
            "median",
            f"{statistics.median(t['ops_per_sec'] for _, t, _, _ in rows):,.0f}",
            f"{statistics.median(t['cpu_us_per_op'] for _, t, _, _ in rows):.2f}",
            f"{statistics.median(m['ops_per_sec'] for _, _, m, _ in rows):,.0f}",
            f"{statistics.median(m['cpu_us_per_op'] for _, _, m, _ in rows):.2f}",
            f"{statistics.median(ratio for *_, ratio in rows):.2f}x",
        )
    )
    print()
    print(
        tabulate(
            table,
            headers=(
                "round",
                "memcaslap ops/s",
                "memcaslap CPU µs/op",
                "ours ops/s",
                "ours CPU µs/op",
                "ours/memcaslap",
            ),
            disable_numparse=True,
            colalign=("left",) + ("right",) * 5,
        )
    )
    print(
        f"\nours, window 16 (pipelined): {window16['ops_per_sec']:,.0f} ops/s, "
        f"{window16['cpu_us_per_op']:.2f} CPU µs/op"
    )


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Our engine, memcaslap and (when on PATH) memtier_benchmark side by side on one memcached, same shape.

Shape (memaslap's defaults): 32 connections in all, window 1 (closed loop),
90 % get / 10 % set, 64-byte keys, 1024-byte values, a ~96k keyspace filled
before gets (memaslap: -c 32 -w 3k fills 32 x 3k keys; ours: keys=96000,
preload=True), against memcached -t 1, alternating, several rounds:

1. one load process each: one shard of ours against ``memcaslap -T 1`` (and
   ``memtier_benchmark -t 1 -c 32``). With
   two or more CPUs memcached is pinned to the first and the load to the
   second, so both tools get the same CPU budget and neither competes with the
   server for its core;
2. two load processes each: two synchronized shards of ours (as
   ``pytest --slap-shards=2`` runs them) against ``memcaslap -T 2`` (and
   ``memtier_benchmark -t 2 -c 16``), unpinned;
3. pipelined: 8 connections with 16 requests in flight on each, one load
   process pinned as in 1: one shard of ours (window=16) against
   ``memtier_benchmark -t 1 -c 8 --pipeline=16`` (memcaslap does not pipeline),
   also with memtier_benchmark's default of one random seed for all its
   connections (see ``memtier``); ours also with ``poll_interval``
   (docs/speed.md, "the pipelined gap").

memtier_benchmark runs with ``--distinct-client-seed``, so that each of its
connections draws its own keys as ours and memcaslap's do.

Every run loads a freshly started memcached (``--shared-server``: one for
all), all its threads pinned, so that no tool inherits the items, hash table
and slab state that the runs before it left. memtier_benchmark's ops/s are
the server's count of its requests (see ``memtier``).

Ours runs twice in every round, on the compiled hot path and on its
pure-Python twin (``PYTEST_MEMASLAP_NO_EXTENSIONS=1``). Prints ops/s, CPU µs
per request (user + system, and each), how busy memcached was and its own CPU
µs per request under the load (``ServerWatch``), the ratios of each of ours
to each peer (of ops/s, and of total CPU per request) and each round's ops/s
ratio. Our CPU is the
measured phase's (``engine.cpu_us_per_request``: building the keyspace and
preloading it are set-up, as the peers' separate fill runs are); the peers'
is their whole process's.

    python benchmarks/vs_memaslap.py [--duration 10] [--rounds 3] [--shared-server] [--shapes 1,2,pipelined]
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from server_under_test import Servers, ServerWatch, server_cpu  # noqa: E402  (beside this script)

CONNECTIONS = 32
KEYS = 96_000


def run_child(
    host: str,
    port: int,
    duration: float,
    connections: int,
    window: int,
    index: int,
    count: int,
    prefix: str,
    poll_interval: float = 0.0,
) -> None:
    """In a child process: run one shard, print its numbers as JSON."""
    from pytest_memaslap import ShardPlan, Target, Workload, run_shard
    from pytest_memaslap.stats.histogram import Histogram

    workload = Workload.from_args(
        {
            "duration": duration,
            "connections": connections,
            "window": window,
            "keys": KEYS,
            "key_size": 64,
            "value_size": 1024,
            "commands": {"get": 0.9, "set": 0.1},
            "preload": True,
            "poll_interval": poll_interval,
        }
    )
    result = run_shard(workload, Target(host, port), prefix, ShardPlan(index, count, 60.0))
    measured = result.measured
    latency = Histogram()
    for stats in measured.commands.values():
        latency.merge(stats.latency)
    print(
        json.dumps(
            {
                "ops": measured.ops,
                "seconds": measured.elapsed_s,
                "started_at": result.started_at,
                "requests": measured.requests,
                "user_s": result.cpu_user_s,  # (the measured phase's: set-up is not in it)
                "system_s": result.cpu_system_s,
                "implementation": result.implementation,
                "errors": sum(c.errors for c in measured.commands.values()),
                "p999_us": latency.percentile(99.9) / 1000.0,
            }
        )
    )


def _pin(cpus: set[int] | None) -> Callable[[], None] | None:
    if not cpus:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


def _wait_with_rusage(process: subprocess.Popen[str], timeout: float) -> tuple[str, tuple[float, float]]:
    """Wait for a child (bounded) and return its stdout and its CPU seconds (user, system)."""
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
    return out, (usage.ru_utime, usage.ru_stime)


def ours(
    host: str,
    port: int,
    duration: float,
    window: int,
    shards: int,
    cpus: set[int] | None,
    implementation: str,
    connections: int = CONNECTIONS,
    poll_interval: float = 0.0,
) -> dict[str, float]:
    """Run ``shards`` shard processes side by side on one hot path; ops/s over the union of their measured windows."""
    env = dict(os.environ)
    env.pop("PYTEST_MEMASLAP_NO_EXTENSIONS", None)
    if implementation == "python":
        env["PYTEST_MEMASLAP_NO_EXTENSIONS"] = "1"
    prefix = f"bench{os.getpid()}{time.monotonic_ns() % 100000}:"
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--child",
                host,
                str(port),
                str(duration),
                str(connections),
                str(window),
                str(i),
                str(shards),
                prefix,
                str(poll_interval),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=_pin(cpus),
            env=env,
        )
        for i in range(shards)
    ]
    parts = [json.loads(_wait_with_rusage(p, duration + 120)[0].strip().splitlines()[-1]) for p in processes]
    if any(p["errors"] for p in parts):
        raise SystemExit(f"our engine saw errors: {parts}")
    if any(p["implementation"] != implementation for p in parts):
        raise SystemExit(f"asked for the {implementation} hot path, ran {[p['implementation'] for p in parts]}")
    start = min(p["started_at"] for p in parts)
    end = max(p["started_at"] + p["seconds"] for p in parts)
    requests = sum(p["requests"] for p in parts)
    result = {
        "ops_per_sec": sum(p["ops"] for p in parts) / (end - start),
        "user_us_per_op": sum(p["user_s"] for p in parts) / requests * 1e6,
        "system_us_per_op": sum(p["system_s"] for p in parts) / requests * 1e6,
    }
    if shards == 1:  # (several shards' p99.9 would need their histograms merged; one is the issue's shape)
        result["p999_us"] = parts[0]["p999_us"]
    return result


def memaslap(
    binary: str, host: str, port: int, duration: float, threads: int, cpus: set[int] | None
) -> dict[str, float]:
    command = [binary, "-s", f"{host}:{port}", "-T", str(threads), "-c", str(CONNECTIONS), "-w", "3k"]
    command += ["-t", f"{int(duration)}s"]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=_pin(cpus)
    )
    out, (user, system) = _wait_with_rusage(process, duration + 120)
    match = re.search(r"Run time: ([\d.]+)s Ops: (\d+) TPS: (\d+)", out)
    if not match:
        raise SystemExit(f"could not read memcaslap's report:\n{out}")
    ops = int(match.group(2))
    return {
        "ops_per_sec": float(match.group(3)),
        "user_us_per_op": user / ops * 1e6,
        "system_us_per_op": system / ops * 1e6,
    }


Run = Callable[[str, int], dict[str, float]]  # (host, port) of the memcached to load -> its figures
PEERS = ("memcaslap", "memtier", "memtier, one seed")


def memtier(
    binary: str,
    host: str,
    port: int,
    duration: float,
    threads: int,
    cpus: set[int] | None,
    connections: int = CONNECTIONS,
    pipeline: int = 1,
    distinct_seeds: bool = True,
) -> dict[str, float]:
    """memtier_benchmark at the same shape: ``connections`` over ``threads`` threads, 1:9 set:get, 1 KiB values.

    Each connection draws its own random keys (``--distinct-client-seed``), as
    ours and memcaslap's do. By default memtier_benchmark seeds every
    connection alike, so they all send the same key sequence: memcached then
    sees each key requested once per connection within a few milliseconds
    (13,500 gets over 2,461 distinct keys in half a second where ours touched
    12,286), keeps them in its warm LRU and its caches, and spends half the
    user CPU a request (0.9 µs against 1.8). ``distinct_seeds=False`` runs
    that default, for comparison.

    Its keyspace is filled first by a run of sets over every key; its keys are
    ``memtier-N`` behind a prefix that makes them about 64 bytes. Its ops/s are
    the server's count of the run's requests over the run's seconds: in some
    runs memtier_benchmark printed 1.5x what the server answered (444k ops/s
    where the server counted 888k requests in a 3 s run), as if it divided by
    one second less; the line says so when the two differ by over 5 %.
    """
    base = [binary, "-s", host, "-p", str(port), "-P", "memcache_text", "--hide-histogram", "-d", "1024"]
    base += ["--key-maximum", str(KEYS), "--key-prefix", "k" * 50 + "memtier-"]
    fill = base + ["-t", "1", "-c", "1", "--ratio=1:0", "--key-pattern=P:P", "--requests=allkeys"]
    _wait_with_rusage(subprocess.Popen(fill, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True), 600)
    command = base + ["-t", str(threads), "-c", str(connections // threads), "--ratio=1:9", "--key-pattern=R:R"]
    command += ["--test-time", str(int(duration)), f"--pipeline={pipeline}"]
    command += ["--distinct-client-seed"] if distinct_seeds else []
    counted = server_cpu(host, port)
    _, before = counted()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=_pin(cpus)
    )
    out, cpu = _wait_with_rusage(process, duration + 120)
    _, after = counted()
    return _memtier_totals(out, int(duration), cpu, after - before)


def _memtier_totals(out: str, duration: float, cpu: tuple[float, float], served: int) -> dict[str, float]:
    """ops/s (the server's count over the run's seconds, beside the Totals row's first number) and p99.9 in µs
    (its column, where this memtier prints one)."""
    header = next((line.split() for line in out.splitlines() if line.startswith("Type")), [])
    totals = next((line.split() for line in out.splitlines() if line.startswith("Totals")), None)
    if not totals or len(totals) < 2:
        raise SystemExit(f"could not read memtier_benchmark's report:\n{out}")
    requests = max(served, 1)
    ops_per_sec = requests / duration
    reported = float(totals[1])
    if abs(reported / ops_per_sec - 1.0) > 0.05:
        print(f"  (memtier_benchmark printed {reported:,.0f} ops/s; the server answered {ops_per_sec:,.0f}/s: used)")
    result = {
        "ops_per_sec": ops_per_sec,
        "user_us_per_op": cpu[0] / requests * 1e6,
        "system_us_per_op": cpu[1] / requests * 1e6,
    }
    columns = " ".join(header).replace(" Latency", "").replace("Avg.", "Avg").split()
    if "p99.9" in columns and len(totals) == len(columns):
        result["p999_us"] = float(totals[columns.index("p99.9")]) * 1000.0  # (memtier prints ms)
    return result


def compare(title: str, rounds: int, runs: dict[str, Run], servers: Servers) -> None:
    """Alternate the peers and our two hot paths, ``rounds`` times; print each round, then per tool the medians
    (ops/s, CPU µs per request: user, system, total; the server's busy share and CPU µs per request under
    the load, see ``ServerWatch``) and our ratios to each peer (ops/s, and total CPU per request: below 1 is
    cheaper), then each round's ops/s ratio."""
    from tabulate import tabulate

    names = list(runs)
    peers = [n for n in names if n in PEERS]
    ours = [n for n in names if n not in PEERS]
    rows: list[dict[str, dict[str, float]]] = []
    for round_no in range(1, rounds + 1):
        measured = {}
        for name, run in runs.items():
            with servers.serve() as (host, port), ServerWatch(host, port) as watch:
                measured[name] = run(host, port)
            measured[name].update({"server_busy": math.nan, "server_us_per_op": math.nan} | watch.figures())
            measured[name]["total_us_per_op"] = measured[name]["user_us_per_op"] + measured[name]["system_us_per_op"]
        rows.append(measured)
        line = ", ".join(
            f"{name} {m['ops_per_sec']:,.0f} ops/s {m['total_us_per_op']:.2f} µs/op" for name, m in measured.items()
        )
        print(f"  {title}, round {round_no}: {line}")

    def median(name: str, key: str) -> float:
        return statistics.median(row[name][key] for row in rows)

    def ratio(mine: str, peer: str, key: str) -> str:  # (the median of the rounds' ratios: alternating pairs)
        return f"{statistics.median(row[mine][key] / row[peer][key] for row in rows):.2f}x"

    keys = ("ops_per_sec", "user_us_per_op", "system_us_per_op", "total_us_per_op", "server_busy", "server_us_per_op")
    table = []
    for name in names:
        cells = [name, f"{median(name, keys[0]):,.0f}"] + [f"{median(name, key):.2f}" for key in keys[1:]]
        for peer in peers:
            mine = name in ours
            cells += [
                ratio(name, peer, "ops_per_sec") if mine else "",
                ratio(name, peer, "total_us_per_op") if mine else "",
            ]
        table.append(cells)
    headers = ["tool", "ops/s", "user µs/op", "system µs/op", "total µs/op", "server busy", "server µs/op"]
    for peer in peers:
        headers += [f"ops/s vs {peer}", f"CPU/op vs {peer}"]
    print(f"\n{title} (medians of {rounds} rounds)")
    print(tabulate(table, headers=headers, disable_numparse=True, colalign=("left",) + ("right",) * (len(headers) - 1)))
    for tool in ours:
        for peer in peers:
            by_round = ", ".join(f"{row[tool]['ops_per_sec'] / row[peer]['ops_per_sec']:.2f}" for row in rows)
            print(f"{tool} / {peer}, ops/s by round: {by_round}")
    tails = [n for n in names if all("p999_us" in row[n] for row in rows)]
    if "memtier" in tails and len(tails) > 1:  # the tail each reports, in the same runs (memcaslap prints none)
        p999 = {name: median(name, "p999_us") for name in tails}
        tail_line = ", ".join(f"{name} {p999[name]:,.0f}" for name in tails)
        tail_ratios = ", ".join(f"{name}/memtier {p999[name] / p999['memtier']:.2f}x" for name in tails if name in ours)
        print(f"p99.9 latency, medians (µs): {tail_line}; {tail_ratios}")
    print()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        host, port, duration, connections, window, index, count, prefix, poll = sys.argv[2:]
        run_child(
            host, int(port), float(duration), int(connections), int(window), int(index), int(count), prefix, float(poll)
        )
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--memcaslap", default=shutil.which("memcaslap") or shutil.which("memaslap") or "memcaslap")
    parser.add_argument("--memtier", default="memtier_benchmark", help="memtier_benchmark binary (run when found)")
    parser.add_argument(
        "--shared-server",
        action="store_true",
        help="load one memcached for all runs (default: a fresh one for each run, so none inherits another's items)",
    )
    parser.add_argument(
        "--shapes",
        default="1,2,pipelined",
        help="which comparisons to run, comma-separated: 1 (one load process), 2 (two), pipelined (default: all)",
    )
    args = parser.parse_args()
    chosen = set(args.shapes.split(","))
    if not chosen or chosen - {"1", "2", "pipelined"}:
        parser.error(f"--shapes {args.shapes!r}: a comma-separated choice of 1, 2 and pipelined")
    if not shutil.which(args.memcaslap):
        raise SystemExit("memcaslap not found: sudo apt-get install libmemcached-tools")

    servers = Servers(fresh=not args.shared_server)
    duration, load_cpu = args.duration, servers.load_cpu
    try:
        print(f"{servers.describe()}; {args.rounds} rounds of {duration:g} s")
        peers: dict[str, Callable[[int, set[int] | None], Run]] = {
            "memcaslap": lambda threads, cpu: (
                lambda host, port: memaslap(args.memcaslap, host, port, duration, threads, cpu)
            )
        }
        if shutil.which(args.memtier):
            peers["memtier"] = lambda threads, cpu: (
                lambda host, port: memtier(args.memtier, host, port, duration, threads, cpu)
            )
        else:
            print(f"({args.memtier} is not on PATH: docs/speed.md says how to build it)")

        def shapes(threads: int, shards: int, cpu: set[int] | None) -> dict[str, Run]:
            runs: dict[str, Run] = {name: peer(threads, cpu) for name, peer in peers.items()}
            for implementation in ("compiled", "python"):
                runs[implementation] = functools.partial(
                    ours, duration=duration, window=1, shards=shards, cpus=cpu, implementation=implementation
                )
            return runs

        window_one = {  # --shapes name: (title, load processes, their CPUs)
            "1": ("one load process (ours: 1 shard; peers: 1 thread), load pinned to its own CPU", 1, load_cpu),
            "2": ("two load processes (ours: 2 shards; peers: 2 threads), load not pinned", 2, None),
        }
        for name, (title, processes, cpu) in window_one.items():
            if name in chosen:
                compare(title, args.rounds, shapes(processes, processes, cpu), servers)
        if "pipelined" not in chosen:
            return
        pipelined: dict[str, Run] = {}
        if "memtier" in peers:
            pipelined["memtier"] = lambda host, port: memtier(args.memtier, host, port, duration, 1, load_cpu, 8, 16)
            pipelined["memtier, one seed"] = lambda host, port: memtier(
                args.memtier, host, port, duration, 1, load_cpu, 8, 16, distinct_seeds=False
            )
        shape = {"duration": duration, "window": 16, "shards": 1, "cpus": load_cpu, "connections": 8}
        for implementation in ("compiled", "python"):
            pipelined[implementation] = functools.partial(ours, implementation=implementation, **shape)
        pipelined["compiled, poll_interval"] = functools.partial(
            ours, implementation="compiled", poll_interval=5e-5, **shape
        )
        compare("pipelined: 8 connections x 16 in flight, one load process pinned", args.rounds, pipelined, servers)
    finally:
        servers.close()


if __name__ == "__main__":
    main()

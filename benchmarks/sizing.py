#!/usr/bin/env python3
"""How many load cores and shards a memcached of N threads needs: a model from measured CPU per request.

Measures, on one memcached (-t 1, pinned to the first CPU) at memaslap's
shape (32 connections, window 1, 90 % get / 10 % set, 1 KiB values): our
CPU per request (user + system, one shard pinned to the second CPU) and
memcached's (its rusage over the requests it answered in the same run).
Then, assuming both scale with cores until something else (the NIC, the
kernel's locks) stops them:

- a memcached with N busy threads answers at most N x 1e6 / server_us
  requests a second;
- one load core sends at most 1e6 / load_us;
- so saturating it takes N x load_us / server_us load cores: that many
  shards (``--slap-shards``), on that many cores not shared with the server.

The model is checked here against what 1 shard (pinned, its own core) and 2
shards (unpinned, sharing the two cores with memcached: the model's bound is
then 2 cores / (server_us + load_us) and 1e6 / server_us) drew, and prints
both.

    python benchmarks/sizing.py [--duration 6] [--rounds 3]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from server_under_test import pin_process, server_cpu  # noqa: E402  (the server under test, read alike)
from vs_memaslap import ours  # noqa: E402  (the comparison benchmark's runner)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per run (default 6)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, alternating 1 and 2 shards (default 3)")
    args = parser.parse_args()
    from tabulate import tabulate

    from pytest_memaslap.memcached.server import ServerConfig, start_server

    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise SystemExit("needs two CPUs: one for memcached, one for the load")
    server = start_server(ServerConfig(threads=1, memory_mb=4096))
    assert server.process is not None
    pin_process(server.process.pid, {cpus[0]})
    read_server = server_cpu(server.host, server.port)
    one: list[dict[str, float]] = []
    two: list[dict[str, float]] = []
    try:
        for _ in range(args.rounds):
            for shards, runs, pin in ((1, one, {cpus[1]}), (2, two, None)):
                cpu_before, served_before = read_server()
                run = ours(server.host, server.port, args.duration, 1, shards, pin, "compiled")
                cpu_after, served_after = read_server()
                run["server_us_per_op"] = (cpu_after - cpu_before) / max(served_after - served_before, 1) * 1e6
                run["load_us_per_op"] = run["user_us_per_op"] + run["system_us_per_op"]
                runs.append(run)
    finally:
        server.stop()

    def median(runs: list[dict[str, float]], key: str) -> float:
        return statistics.median(run[key] for run in runs)

    load_us, server_us = median(one, "load_us_per_op"), median(one, "server_us_per_op")
    print(
        f"measured (1 shard pinned, medians of {args.rounds}): load {load_us:.2f} µs of CPU a request, "
        f"memcached {server_us:.2f} µs"
    )
    checks = [
        ("1 shard, its own core", 1e6 / max(load_us, server_us), median(one, "ops_per_sec")),
        ("2 shards, sharing 2 cores with memcached", min(2e6 / (load_us + server_us), 1e6 / server_us),
         median(two, "ops_per_sec")),
    ]  # fmt: skip
    print(
        tabulate(
            [(name, f"{bound:,.0f}", f"{got:,.0f}", f"{got / bound:.2f}") for name, bound, got in checks],
            headers=("check", "model's bound ops/s", "measured ops/s", "measured / bound"),
            disable_numparse=True,
        )
    )
    rows = []
    for threads in (1, 2, 4, 8, 16, 32):
        capacity = threads * 1e6 / server_us
        cores = capacity * load_us / 1e6
        rows.append((str(threads), f"{capacity:,.0f}", f"{cores:.1f}", str(math.ceil(cores))))
    print()
    print(
        tabulate(
            rows,
            headers=("memcached threads", "its ceiling ops/s", "load cores to reach it", "--slap-shards"),
            disable_numparse=True,
        )
    )


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""How often do the validity checks fail a healthy run? Healthy runs, back to back, each check counted.

Closed loop (32 connections, window 1) and open loop (3k requests/s,
Poisson, 8 connections) alternate, ``--runs`` of each, ``--duration``
seconds, on one memcached -t 2 the script starts and nothing else loads.
Prints each run's failed checks (none, for a healthy run), then per check
how many runs it failed: its false-alarm rate on this machine.

    python benchmarks/validity_false_alarms.py [--runs 10] [--duration 8]
"""

from __future__ import annotations

import argparse
from collections import Counter

from pytest_memaslap import Target, Workload, run_shard
from pytest_memaslap.memcached.server import ServerConfig, start_server
from pytest_memaslap.stats.result import SlapResult

SHAPES = {
    "closed": {"connections": 32, "window": 1, "keys": 20_000},
    "open 3k/s": {"connections": 8, "keys": 20_000, "rate": "3k", "arrivals": "poisson"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--duration", type=float, default=8.0)
    args = parser.parse_args()
    server = start_server(ServerConfig(threads=2, memory_mb=256))
    failures: dict[str, Counter[str]] = {name: Counter() for name in SHAPES}
    try:
        for run in range(args.runs):
            for name, shape in SHAPES.items():
                workload = Workload.from_args({**shape, "duration": args.duration})
                raw = run_shard(workload, Target("127.0.0.1", server.port), f"fa{run}{len(name)}:")
                validity = SlapResult(workload, raw).validity()
                failures[name].update(validity["failed"])
                print(f"run {run + 1} {name:>9}: failed {validity['failed'] or 'nothing'}")
    finally:
        server.stop()
    for name, counted in failures.items():
        checks = ", ".join(f"{check} {counted[check]}/{args.runs}" for check in ("rate", "arrivals", "stationarity"))
        print(f"{name}: false alarms: {checks}")


if __name__ == "__main__":
    main()

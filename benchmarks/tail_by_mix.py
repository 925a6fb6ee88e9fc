#!/usr/bin/env python3
"""Does the engine's own work show in the tail? The same load with 2 commands and with all 12, alternating.

A mix of 12 commands has more to count than get/set, but nothing the engine
does once a second may grow with it: if it did, every request in flight
during that work would report it as server latency, and the 12-command tail
would be longer. Both mixes run as memaslap's shape (32 connections, window 1,
one shard, preloaded keys) on one memcached -t 1 that the script starts,
alternating for ``--rounds`` rounds of ``--duration`` seconds, on the compiled
hot path (or the twin with ``PYTEST_MEMASLAP_NO_EXTENSIONS=1``). Prints each
run's ops/s, p99 and p99.9, its periodic blocks (the tick, a refill, the
stall watchdog: how many, p99, p99.9 and the longest) beside the machine's
own hiccups in the same run (how late a thread that only sleeps 5 ms at a
time woke; compiled only), then the ratio of the medians of p99.9 (12
commands / 2).

    python benchmarks/tail_by_mix.py [--duration 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics

from pytest_memaslap import Target, Workload, run_shard
from pytest_memaslap.memcached.server import ServerConfig, start_server
from pytest_memaslap.model.workload import COMMANDS
from pytest_memaslap.stats.result import SlapResult

MIXES = {
    "2 commands": {"get": 0.9, "set": 0.1},
    "12 commands": dict.fromkeys(COMMANDS, 1 / len(COMMANDS)),
}


def run(mix: dict[str, float], duration: float, port: int, prefix: str) -> SlapResult:
    workload = Workload.from_args(
        {"duration": duration, "connections": 32, "window": 1, "keys": 20_000, "commands": mix, "preload": True}
    )
    return SlapResult(workload, run_shard(workload, Target("127.0.0.1", port), prefix))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    server = start_server(ServerConfig(threads=1, memory_mb=256))
    p999: dict[str, list[float]] = {name: [] for name in MIXES}
    try:
        for round_ in range(args.rounds):
            for name, mix in MIXES.items():
                result = run(mix, args.duration, server.port, f"mix{round_}{len(mix)}:")
                engine = result.engine()
                longest, blocks = engine["periodic_max_us"], engine["periodic_us"]
                hiccups = engine["machine_hiccups_us"]
                p999[name].append(result.p999)
                print(
                    f"round {round_ + 1} {name:>11}: {result.ops_per_sec:>9,.0f} ops/s  p99 {result.p99:>6,.0f} µs  "
                    f"p99.9 {result.p999:>6,.0f} µs  ({engine['implementation']})",
                    flush=True,
                )
                for work in ("timeline_close", "request_refill", "stall_watchdog"):
                    print(
                        f"    {work:<15} {blocks[work]['count']:>7,} blocks  p99 {blocks[work]['p99']:>6,.1f}  "
                        f"p99.9 {blocks[work]['p999']:>6,.1f}  max {longest[work]:>7,.1f} µs"
                    )
                if hiccups is not None:
                    print(
                        f"    machine hiccups {hiccups['count']:>7,} sleeps  p99 {hiccups['p99']:>6,.1f}  "
                        f"p99.9 {hiccups['p999']:>6,.1f}  max {hiccups['max']:>7,.1f} µs"
                    )
    finally:
        server.stop()
    two, twelve = (statistics.median(p999[name]) for name in MIXES)
    print(f"p99.9 medians: 2 commands {two:,.0f} µs, 12 commands {twelve:,.0f} µs: ratio {twelve / two:.2f}")


if __name__ == "__main__":
    main()

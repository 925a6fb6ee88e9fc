#!/usr/bin/env python3
"""Does sampling the server's stats cost the load anything? The same load with the sampler on and off, alternating.

The sampler is a thread with its own connection (``memcached/sampler.py``):
it must not hold up the load's event loop. Both runs are memaslap's shape
(32 connections, window 1, get/set 90/10, preloaded) on one memcached -t 1
the script starts, for ``--rounds`` rounds of ``--duration`` seconds each,
on the compiled hot path. Prints each run's ops/s, the event loop's lag
(p99 and max), the longest of the engine's periodic blocks, and p99.9, then
the ratios of the medians (on / off).

    python benchmarks/server_sampling_cost.py [--duration 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics

from pytest_memaslap import Target, Workload, run_shard
from pytest_memaslap.memcached.sampler import StatsSampler
from pytest_memaslap.memcached.server import ServerConfig, start_server
from pytest_memaslap.stats.result import SlapResult


def run(duration: float, port: int, prefix: str, sample: bool) -> SlapResult:
    workload = Workload.from_args({"duration": duration, "connections": 32, "window": 1, "keys": 20_000})
    sampler = StatsSampler([("127.0.0.1", port)]) if sample else None
    if sampler is not None:
        sampler.start()
    try:
        raw = run_shard(workload, Target("127.0.0.1", port), prefix)
    finally:
        if sampler is not None:
            sampler.stop()
    return SlapResult(workload, raw)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    server = start_server(ServerConfig(threads=1, memory_mb=256))
    figures: dict[str, dict[str, list[float]]] = {"off": {}, "on": {}}
    try:
        for round_ in range(args.rounds):
            for name in ("off", "on"):
                result = run(args.duration, server.port, f"sc{round_}{name}:", name == "on")
                engine = result.engine()
                row = {
                    "ops/s": result.ops_per_sec,
                    "loop lag p99 µs": engine["loop_lag_us"]["p99"],
                    "loop lag max µs": engine["loop_lag_us"]["max"],
                    "longest periodic block µs": max(engine["periodic_max_us"].values()),
                    "p99.9 µs": result.p999,
                }
                for key, value in row.items():
                    figures[name].setdefault(key, []).append(value)
                print(f"round {round_ + 1} sampler {name:>3}: " + "  ".join(f"{k} {v:,.0f}" for k, v in row.items()))
    finally:
        server.stop()
    for key in figures["on"]:
        on, off = statistics.median(figures["on"][key]), statistics.median(figures["off"][key])
        print(f"median {key}: on {on:,.0f}, off {off:,.0f}, on / off {on / off if off else float('nan'):.2f}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Is trace replay fast enough not to be the bottleneck? Replay from a zstd trace against the synthetic mix.

Both run as the same open loop on one shard, at a rate neither reaches (so
each sends as fast as it can make requests), with the same connections,
keyspace size, get/set mix and value size: the synthetic generator draws its
requests, the replay reads, parses and hashes them from a zstd-compressed
Twitter-format trace written for the run (``--lines`` lines over ``--keys``
keys, Zipf-like popularity, 90 % gets). They alternate for ``--rounds``
rounds of ``--duration`` seconds against one memcached -t 1 the script
starts (keys preloaded for the synthetic run; the replay's own sets fill its
keys), and it prints each run's achieved ops/s and the ratio of the medians
(replay / synthetic). The issue's goal: at least 0.9.

    python benchmarks/replay_speed.py [--duration 5] [--rounds 3] [--lines 3000000]
"""

from __future__ import annotations

import argparse
import bisect
import random
import statistics
import tempfile
from pathlib import Path

import zstandard

from pytest_memaslap import Target, Workload, run_shard
from pytest_memaslap.memcached.server import ServerConfig, start_server
from pytest_memaslap.stats.result import SlapResult

RATE = 2_000_000  # requests/s: far above what one shard reaches, so both run as fast as they can
CONNECTIONS = 16
VALUE = 100


def write_trace(path: Path, lines: int, keys: int, seed: int = 1) -> None:
    """A Twitter-format trace, zstd-compressed: ``lines`` requests over ``keys`` keys, 90 % gets."""
    rng = random.Random(seed)
    weights, total = [], 0.0
    for rank in range(1, keys + 1):
        total += 1 / rank**0.99
        weights.append(total)
    compressor = zstandard.ZstdCompressor(level=3)
    with path.open("wb") as raw, compressor.stream_writer(raw) as out:
        chunk = []
        for i in range(lines):
            key = bisect.bisect_left(weights, rng.random() * total)
            op = "get" if rng.random() < 0.9 else "set"
            chunk.append(f"{i // 100_000},key{key:08d},20,{VALUE},1,{op},0\n")
            if len(chunk) == 10_000:
                out.write("".join(chunk).encode())
                chunk = []
        out.write("".join(chunk).encode())


def run(args: dict[str, object], port: int, prefix: str) -> SlapResult:
    workload = Workload.from_args(args)
    return SlapResult(workload, run_shard(workload, Target("127.0.0.1", port), prefix))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--lines", type=int, default=3_000_000)
    parser.add_argument("--keys", type=int, default=100_000)
    args = parser.parse_args()
    shared = {"duration": args.duration, "connections": CONNECTIONS, "rate": RATE, "arrivals": "uniform"}
    with tempfile.TemporaryDirectory() as folder:
        trace = Path(folder) / "bench.csv.zst"
        write_trace(trace, args.lines, args.keys)
        print(f"trace: {args.lines:,} lines over {args.keys:,} keys, {trace.stat().st_size / 1e6:.1f} MB zstd")
        shapes = {
            "synthetic": {**shared, "keys": args.keys, "value_size": VALUE, "commands": {"get": 0.9, "set": 0.1}},
            "replay": {**shared, "trace": str(trace), "loop": True},
        }
        server = start_server(ServerConfig(threads=1, memory_mb=512))
        rates: dict[str, list[float]] = {name: [] for name in shapes}
        try:
            for round_ in range(args.rounds):
                for name, shape in shapes.items():
                    result = run(shape, server.port, f"rs{round_}{name[0]}:")
                    rates[name].append(result.ops_per_sec)
                    engine = result.engine()
                    print(
                        f"round {round_ + 1} {name:>9}: {result.ops_per_sec:>9,.0f} ops/s  p99 {result.p99:>7,.0f} µs"
                        f"  CPU {engine['cpu_pct']:>5.1f} %  hit ratio {result.hit_ratio:.3f}"
                    )
        finally:
            server.stop()
    replay, synthetic = statistics.median(rates["replay"]), statistics.median(rates["synthetic"])
    print(
        f"median ops/s: replay {replay:,.0f}, synthetic {synthetic:,.0f}; replay / synthetic = {replay / synthetic:.2f}"
    )


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Soak: a long mixed workload on two synchronized shards; errors, memory growth, lost requests.

Not part of the test run. Starts its own memcached (loopback, UDP off), runs
two shard processes side by side for ``--duration`` (default 10 minutes) with
a get/set/delete mix, and reports:

- errors per shard (target: 0);
- RSS of each load process 10 s into the measured phase and at its end, and
  what of the growth is the per-second timeline (each second's latency
  histogram, kept for the JSON, the report and the HDR logs: a few KiB a
  second by design); the rest must stay under 10 %: the engine must not
  accumulate per-request state;
- lost requests: every request the shards sent, against what memcached's own
  counters moved by (target: equal).

    python benchmarks/soak.py [--duration 600]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading

RSS_FIRST_SAMPLE_S = 10.0


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def timeline_bytes(timeline: list) -> int:
    """What the per-second timeline holds: each second's histogram run and its object (kept by design)."""
    return sum(second.counts.itemsize * len(second.counts) + 64 + sys.getsizeof(second) for second in timeline)


def run_child(host: str, port: int, duration: float, index: int, count: int, prefix: str) -> None:
    """In a child: one shard; samples its own RSS early in the run and at the end."""
    from pytest_memaslap import ShardPlan, Target, Workload, run_shard

    workload = Workload.from_args(
        {
            "duration": duration,
            "warmup": "5s",
            "connections": 16,
            "window": 4,
            "keys": 200_000,
            "key_size": (16, 64),
            "value_size": [(64, 512, 0.7), (512, 8192, 0.3)],
            "commands": {"get": 0.8, "set": 0.15, "delete": 0.05},
            "preload": True,
        }
    )
    samples: dict[str, int] = {}
    stop = threading.Event()

    def sample() -> None:
        # the measured phase starts after preload and the 5 s warm-up; sample 10 s into the load
        if not stop.wait(5.0 + RSS_FIRST_SAMPLE_S + 3.0):
            samples["early"] = rss_kib()

    threading.Thread(target=sample, daemon=True).start()
    result = run_shard(workload, Target(host, port), prefix, ShardPlan(index, count, 120.0))
    samples["end"] = rss_kib()
    stop.set()
    measured = result.measured
    print(
        json.dumps(
            {
                "index": index,
                "ops": measured.ops,
                "seconds": measured.elapsed_s,
                "requests": result.requests_sent,
                "incr": sum(p.commands["incr"].ops for n, p in result.phases.items() if "incr" in p.commands),
                "errors": sum(c.errors for p in result.phases.values() for c in p.commands.values()),
                "rss_early_kib": samples.get("early", 0),
                "rss_end_kib": samples["end"],
                "timeline_kib": timeline_bytes(measured.timeline) / 1024,
            }
        )
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        host, port, duration, index, count, prefix = sys.argv[2:]
        run_child(host, int(port), float(duration), int(index), int(count), prefix)
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=600.0, help="measured seconds (default 600)")
    parser.add_argument("--shards", type=int, default=2)
    args = parser.parse_args()

    from pytest_memaslap.memcached.server import ServerConfig, start_server

    server = start_server(ServerConfig(threads=2, memory_mb=2048))
    try:
        before = server.stats()
        prefix = f"soak{os.getpid()}:"
        children = [
            subprocess.Popen(
                [sys.executable, __file__, "--child", server.host, str(server.port), str(args.duration)]
                + [str(i), str(args.shards), prefix],
                stdout=subprocess.PIPE,
                text=True,
            )
            for i in range(args.shards)
        ]
        parts = []
        for child in children:
            out, _ = child.communicate(timeout=args.duration + 600)
            if child.returncode != 0:
                raise SystemExit(f"shard failed ({child.returncode}):\n{out}")
            parts.append(json.loads(out.strip().splitlines()[-1]))
        after = server.stats()
    finally:
        server.stop()

    moved = sum(after[n] - before[n] for n in ("cmd_get", "cmd_set", "delete_hits", "delete_misses"))
    moved += sum(after[n] - before[n] for n in ("incr_hits", "incr_misses"))
    sent = sum(p["requests"] for p in parts)
    ops = sum(p["ops"] for p in parts)
    seconds = max(p["seconds"] for p in parts)
    print(f"soak: {args.shards} shards, {seconds:.0f} s measured, {ops:,} measured ops ({ops / seconds:,.0f} ops/s)")
    for p in parts:
        growth = (p["rss_end_kib"] - p["rss_early_kib"]) / p["rss_early_kib"] * 100 if p["rss_early_kib"] else 0.0
        p["other_kib"] = p["rss_end_kib"] - p["rss_early_kib"] - p["timeline_kib"]
        print(
            f"  shard {p['index']}: errors {p['errors']}, RSS {p['rss_early_kib'] / 1024:.1f} MiB -> "
            f"{p['rss_end_kib'] / 1024:.1f} MiB ({growth:+.1f} %): the timeline {p['timeline_kib'] / 1024:.1f} MiB "
            f"({p['timeline_kib'] / seconds:.1f} KiB a second, by design), the rest {p['other_kib'] / 1024:+.1f} MiB"
        )
    print(f"  requests sent {sent:,}; memcached counted {moved:,}; lost {sent - moved:,}")
    ok = all(p["errors"] == 0 for p in parts) and sent == moved
    # nothing per request may accumulate: what grew beyond the timeline stays within 10 % of the early RSS
    ok = ok and all(p["other_kib"] <= p["rss_early_kib"] * 0.10 for p in parts if p["rss_early_kib"])
    print("soak: PASS" if ok else "soak: FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

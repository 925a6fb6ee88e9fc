#!/usr/bin/env python3
"""What closing one second of the timeline costs the event loop, with 2 and with 12 commands.

This fills a ``PhaseRecorder`` the way a busy second does (lognormal
latencies around 150 µs over seven octaves, ``--per-second`` replies spread
over the commands; every ``--shift``-th second the latencies move by two
octaves, which makes the close search every bucket), closes it as the runner
does, and prints over ``--seconds`` closes the CPU time of a close (median,
p99, max): what the loop spends on it, while replies wait. CPU time, not wall
time: wall time on a shared machine includes being descheduled, which no
code can avoid. Both hot paths' closes are measured: the compiled core's
(when built) and the pure-Python twin's.

    python benchmarks/close_cost.py [--seconds 300] [--per-second 60000] [--shift 10]
"""

from __future__ import annotations

import argparse
import random
import time

from pytest_memaslap.engine.hot.connection import CompiledConnection, Connection, PythonConnection
from pytest_memaslap.engine.hot.recorder import PhaseRecorder, TakeRun
from pytest_memaslap.model.workload import COMMANDS
from pytest_memaslap.stats.histogram import bucket_index


def measure(
    commands: tuple[str, ...], seconds: int, per_second: int, shift: int, take_run: TakeRun, seed: int = 1
) -> list[int]:
    """CPU ns of each close."""
    rng = random.Random(seed)
    usual = [bucket_index(int(rng.lognormvariate(11.9, 0.5))) for _ in range(per_second)]
    moved = [bucket_index(int(rng.lognormvariate(13.3, 0.5))) for _ in range(per_second)]
    recorder = PhaseRecorder(commands, 0, take_run)
    cpu_ns: list[int] = []
    for number in range(seconds):
        samples = moved if shift and number % shift == shift - 1 else usual
        for i, index in enumerate(samples):  # one busy second, spread over the commands
            recorder.latencies[i % len(commands)][index] += 1
            recorder.second[index] += 1
        started = time.thread_time_ns()
        recorder.close_second()
        cpu_ns.append(time.thread_time_ns() - started)
    return sorted(cpu_ns)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=300, help="seconds to close (default 300)")
    parser.add_argument("--per-second", type=int, default=60_000, help="replies in each second (default 60000)")
    parser.add_argument("--shift", type=int, default=10, help="every Nth second the latencies move (0: never)")
    args = parser.parse_args()
    print(f"{args.per_second:,} replies a second; {args.seconds} closes; latencies move every {args.shift} s")
    print(f"{'hot path':>8} {'commands':>8} {'close CPU p50':>14} {'p99':>9} {'max':>9}")
    cores: list[type[Connection]] = [PythonConnection]
    if CompiledConnection is not None:
        cores.insert(0, CompiledConnection)
    for connection in cores:
        for commands in (("get", "set"), COMMANDS):
            cpu = measure(tuple(commands), args.seconds, args.per_second, args.shift, connection.take_run)
            p50, p99, top = cpu[len(cpu) // 2] / 1000, cpu[int(len(cpu) * 0.99)] / 1000, cpu[-1] / 1000
            name = connection.implementation
            print(f"{name:>8} {len(commands):>8} {p50:>12.1f}µs {p99:>7.1f}µs {top:>7.1f}µs")


if __name__ == "__main__":
    main()

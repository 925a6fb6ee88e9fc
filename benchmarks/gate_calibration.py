#!/usr/bin/env python3
"""How often the gates cry wolf, and how often they catch a real regression: measured on real servers.

For each flow a team gates merges with, the script runs pairs of pytest
sessions through the plugin's own command line, as CI would:

- **saved baseline**: ``--slap-save=base`` on server A, then
  ``--slap-compare=base --slap-compare-fail=...`` on A again (an A/A pair:
  nothing changed) or on B (an A/B pair: B is a known regression);
- **interleaved**: one session ``--memcached=A --slap-versus=B`` with B
  unchanged (A/A) or B the regression (A/B).

The regression is real, not simulated: B is a second memcached whose
process is held to a share of one core by a CPU quota (a cgroup's
``cpu.cfs_quota_us``, or ``cpu.max`` on cgroup v2); ``--quota 0.88`` lowers
its throughput by about 10 % on a 2-core VM where memcached (``-t 1``) is
CPU-bound. The script prints the change each A/B pair measured, so the
injected effect's size is a measurement too.

A/A and A/B pairs alternate in random order, so both see the same machine
in the same minutes. For every flow, metric and kind of pair it prints how
many pairs were judged ``regression``, the rate with its 95 % (Clopper-Pearson)
interval, and how many were ``inconclusive``.

    sudo python benchmarks/gate_calibration.py [--pairs 20] [--rounds 10] [--duration 2] [--quota 0.88]
        [--flows versus,baseline] [--json out.json]

Needs root (the CPU quota) and memcached on PATH. Load goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from scipy.stats import beta

HERE = Path(__file__).resolve().parent
TEST_FILE = """
import pytest

@pytest.mark.slap(connections=32, window=1, commands={"get": 0.9, "set": 0.1}, keys=10_000, preload=True)
def test_gate(slap):
    slap()
"""
KEY = "test_gate.py::test_gate"
CGROUP_V1 = Path("/sys/fs/cgroup/cpu")
CGROUP_V2 = Path("/sys/fs/cgroup")
PERIOD_US = 10_000  # a short period spreads the throttling evenly over a round (100 ms made it bursty)


@contextlib.contextmanager
def memcached() -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A memcached with one worker thread on a free loopback port, stopped at the end."""
    from pytest_memaslap.memcached.server import free_port

    port = free_port()
    process = subprocess.Popen(
        ["memcached", "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-t", "1", "-m", "512", "-u", "root"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    sock.sendall(b"version\r\n")
                    if sock.recv(64).startswith(b"VERSION"):
                        break
            except OSError:
                time.sleep(0.05)
        else:
            raise SystemExit(f"memcached on port {port} did not answer within 10 s")
        yield process, port
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


class CpuQuota:
    """Holds processes to a share of one core with the kernel's CFS bandwidth control; removed at the end."""

    def __init__(self, share: float) -> None:
        name = f"slap-gate-calibration-{os.getpid()}"
        if (CGROUP_V1 / "cpu.cfs_quota_us").exists():
            self.path = CGROUP_V1 / name
            self.path.mkdir()
            (self.path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (self.path / "cpu.cfs_quota_us").write_text(str(int(share * PERIOD_US)))
            self.parent = CGROUP_V1
        elif (CGROUP_V2 / "cgroup.controllers").exists():
            self.path = CGROUP_V2 / name
            self.path.mkdir()
            (self.path / "cpu.max").write_text(f"{int(share * PERIOD_US)} {PERIOD_US}")
            self.parent = CGROUP_V2
        else:
            raise SystemExit("no cgroup CPU controller here: the injected regression needs one (run as root)")

    def hold(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(str(pid))

    def release(self, pid: int) -> None:
        (self.parent / "cgroup.procs").write_text(str(pid))

    def remove(self) -> None:
        for pid in filter(None, (self.path / "cgroup.procs").read_text().split()):
            with contextlib.suppress(OSError):
                self.release(int(pid))
        self.path.rmdir()


def pytest_run(folder: Path, args: list[str], json_path: Path) -> dict:
    """One pytest session in ``folder``; its --slap-json document (the exit status under ``exit``)."""
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "test_gate.py"]
    command += [*args, f"--slap-json={json_path}"]
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=1800, check=False)
    if not json_path.exists():
        raise SystemExit(f"pytest wrote no JSON ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
    document = json.loads(json_path.read_text())
    json_path.unlink()
    document["exit"] = done.returncode
    return document


def verdicts(rows: list[dict]) -> dict[str, dict]:
    """metric -> its row (verdict, change, interval)."""
    return {row["metric"]: row for row in rows}


def run_pair(flow: str, kind: str, folder: Path, common: list[str], a: int, b: int) -> dict[str, dict]:
    """One A/A or A/B pair of a flow: each gated metric's verdict and change."""
    fail = ["--slap-compare-fail=ops_per_sec:-5%,get.p99:+10%"]
    if flow == "versus":
        other = b
        document = pytest_run(
            folder,
            [*common, f"--memcached=127.0.0.1:{a}", f"--slap-versus=127.0.0.1:{other}", *fail],
            folder / "out.json",
        )
        return verdicts(document["tests"][KEY]["versus"]["comparison"])
    pytest_run(folder, [*common, f"--memcached=127.0.0.1:{a}", "--slap-save=base"], folder / "save.json")
    target = a if kind == "A/A" else b
    document = pytest_run(
        folder, [*common, f"--memcached=127.0.0.1:{target}", "--slap-compare=base", *fail], folder / "out.json"
    )
    return verdicts([row for row in document["comparison"]["rows"] if row["test"] == KEY])


def clopper_pearson(hits: int, n: int) -> tuple[float, float]:
    """The exact 95 % interval of a binomial proportion (Clopper and Pearson, 1934)."""
    low = 0.0 if hits == 0 else float(beta.ppf(0.025, hits, n - hits + 1))
    high = 1.0 if hits == n else float(beta.ppf(0.975, hits + 1, n - hits))
    return low, high


def report(results: list[dict]) -> list[str]:
    lines = [
        f"{'flow':<10} {'pairs':<5} {'metric':<12} {'n':>3} {'regression':>10} {'rate':>6} {'95% interval':>15} "
        f"{'inconcl.':>8} {'no change':>9} {'median change':>14}"
    ]
    for flow in sorted({r["flow"] for r in results}):
        for kind in ("A/A", "A/B"):
            for metric in ("ops_per_sec", "get.p99"):
                rows = [r["verdicts"][metric] for r in results if r["flow"] == flow and r["kind"] == kind]
                if not rows:
                    continue
                n = len(rows)
                hits = sum(row["verdict"] == "regression" for row in rows)
                low, high = clopper_pearson(hits, n)
                undecided = sum(row["verdict"] == "inconclusive" for row in rows)
                same = sum(row["verdict"] == "no change" for row in rows)
                changes = [row["change_pct"] for row in rows if row["change_pct"] is not None]
                median = f"{statistics.median(changes):+.1f} %" if changes else "-"
                lines.append(
                    f"{flow:<10} {kind:<5} {metric:<12} {n:>3} {hits:>10} {hits / n:>6.0%} "
                    f"{f'{low:.0%} .. {high:.0%}':>15} {undecided:>8} {same:>9} {median:>14}"
                )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=20, help="A/A pairs and A/B pairs of each flow (default 20)")
    parser.add_argument("--rounds", type=int, default=10, help="rounds a side (pairs under --slap-versus)")
    parser.add_argument("--duration", default="2", help="seconds a round (default 2)")
    parser.add_argument("--quota", type=float, default=0.88, help="B's share of one core in A/B pairs")
    parser.add_argument("--flows", default="versus,baseline", help="versus, baseline, or versus,baseline (the default)")
    parser.add_argument("--json", help="also write every pair's verdicts here")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("the injected regression is a CPU quota: run as root")
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # (a stop ends the servers and removes the quota)
    flows = [f.strip() for f in args.flows.split(",") if f.strip()]
    if not set(flows) <= {"versus", "baseline"} or args.pairs < 1 or not 0 < args.quota <= 1:
        raise SystemExit("--flows takes versus and/or baseline; --pairs >= 1; 0 < --quota <= 1")
    common = [f"--slap-rounds={args.rounds}", f"--slap-duration={args.duration}", "--slap-stat-freq=0"]
    plan = [(flow, kind) for flow in flows for kind in ("A/A", "A/B") for _ in range(args.pairs)]
    random.Random(args.seed).shuffle(plan)
    results: list[dict] = []
    quota = CpuQuota(args.quota)
    try:
        with (
            tempfile.TemporaryDirectory(prefix="slap-gate-") as scratch,
            memcached() as (_, a),
            memcached() as (
                slow,
                b,
            ),
            memcached() as (_, same),
        ):
            folder = Path(scratch)
            (folder / "test_gate.py").write_text(TEST_FILE)
            quota.hold(slow.pid)
            started = time.monotonic()
            for number, (flow, kind) in enumerate(plan, start=1):
                other = b if kind == "A/B" else same
                found = run_pair(flow, kind, folder, common, a, other)
                if not {"ops_per_sec", "get.p99"} <= set(found):
                    print(
                        f"[{number}/{len(plan)}] {flow} {kind}: no verdict (the session failed?): {found}", flush=True
                    )
                    continue
                results.append({"flow": flow, "kind": kind, "verdicts": found})
                ops = found["ops_per_sec"]
                print(
                    f"[{number}/{len(plan)} {time.monotonic() - started:6.0f} s] {flow:<8} {kind}: ops/s "
                    f"{ops['change_pct']:+.1f} % {ops['interval_pct']} {ops['verdict']}; get.p99 "
                    f"{found['get.p99']['change_pct']:+.1f} % {found['get.p99']['verdict']}",
                    flush=True,
                )
    finally:
        quota.remove()
    print()
    print(
        f"{args.pairs} A/A and {args.pairs} A/B pairs a flow; {args.rounds} rounds of {args.duration} s a side; "
        f"B held to {args.quota:.0%} of a core; allowances ops_per_sec:-5%, get.p99:+10%"
    )
    print("\n".join(report(results)))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

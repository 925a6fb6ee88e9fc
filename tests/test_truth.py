"""Latency against ground truth: a delay the test controls must show in the reported latency, no more, no less."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pytest_memaslap import Target, Workload, run_shard
from pytest_memaslap.stats.result import SlapResult

RELAY = Path(__file__).with_name("delay_relay.py")
DELAY_US = 2_000


def _through_relay(server_port: int, delay_us: int, prefix: str) -> tuple[SlapResult, dict[str, float]]:
    """A short closed loop through a relay holding each request ``delay_us``; the result and the relay's own log."""
    relay = subprocess.Popen(
        [sys.executable, str(RELAY), str(server_port), str(delay_us)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert relay.stdout is not None
        port = int(relay.stdout.readline())
        workload = Workload.from_args(
            {"duration": "1.5s", "connections": 2, "keys": 500, "commands": {"get": 0.9, "set": 0.1}}
        )
        result = SlapResult(workload, run_shard(workload, Target("127.0.0.1", port), prefix))
        relay.terminate()
        holds = json.loads(relay.communicate(timeout=10)[0].strip().splitlines()[-1])
    finally:
        if relay.poll() is None:
            relay.kill()
            relay.wait(timeout=10)
    return result, holds


def test_a_known_delay_shows_in_the_reported_p50_within_ten_percent(own_server, hot_path):
    """Requests held 2 ms on their way: p50 = the base round trip + the relay's real hold, within 10 %.

    The base is measured through the same relay without a hold, so the
    relay's own cost is in both; its log says how long it really held each
    request (a sleep overshoots by tens of µs), which is the truth compared with.
    """
    base, _ = _through_relay(own_server.port, 0, "truth0:")
    delayed, holds = _through_relay(own_server.port, DELAY_US, "truth2:")
    truth_us = base.p50 + holds["p50_us"]
    print(f"base p50 {base.p50:.0f} µs, held p50 {holds['p50_us']:.0f} µs, reported p50 {delayed.p50:.0f} µs")
    assert holds["count"] >= delayed.ops  # every request crossed the relay (the preload's too)
    assert holds["p50_us"] >= DELAY_US
    assert abs(delayed.p50 - truth_us) <= 0.10 * truth_us, (base.p50, holds, delayed.p50)
    assert delayed.errors == 0 and base.errors == 0
    # two connections, each waiting ~2 ms per request: the rate follows the delay
    assert delayed.ops_per_sec <= 2 * 1e6 / DELAY_US * 1.05

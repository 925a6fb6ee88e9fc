"""Open loop (rate=): requests leave on a schedule, and a stalled server shows in the tail."""

from __future__ import annotations

import json
import os
import signal
import threading

import pytest
from conftest import output_within, reaped

from pytest_memaslap import Target, Workload, run_shard
from pytest_memaslap.memcached.server import ServerConfig, start_server
from pytest_memaslap.model.workload import WorkloadError
from pytest_memaslap.stats.result import SlapResult

pytestmark = pytest.mark.usefixtures("hot_path")  # every test here runs on the compiled core and its twin

PAUSE_S = 0.2


@pytest.mark.parametrize("arrivals", ["uniform", "poisson"])
def test_a_200ms_server_pause_moves_p999_by_about_200ms(no_new_memcached, arrivals):
    server = start_server(ServerConfig(threads=1, memory_mb=64))
    try:
        workload = Workload.from_args(
            {"duration": "2s", "rate": "5k", "arrivals": arrivals, "connections": 4, "keys": 1000}
        )
        calm = SlapResult(workload, run_shard(workload, Target(server.host, server.port), "ol1:"))
        if calm.p999 > 0.3 * PAUSE_S * 1e6:  # a neighbour on this shared machine stalled us: measure the calm again
            calm = SlapResult(workload, run_shard(workload, Target(server.host, server.port), "ol0:"))
        pid = server.process.pid
        stop = threading.Timer(0.8, os.kill, (pid, signal.SIGSTOP))
        resume = threading.Timer(0.8 + PAUSE_S, os.kill, (pid, signal.SIGCONT))
        stop.start()
        resume.start()
        paused = SlapResult(workload, run_shard(workload, Target(server.host, server.port), "ol2:"))
        stop.join()
        resume.join()
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
        server.stop()
    # the schedule went on through the pause: about rate x duration requests either way
    assert 9_000 <= paused.ops <= 11_000 and 9_000 <= calm.ops <= 11_000
    # ~1000 requests fell due during the pause; the earliest of them waited for all of it
    assert paused.p999 >= 0.75 * PAUSE_S * 1e6, (calm.p999, paused.p999)
    assert paused.p999 - calm.p999 >= 0.6 * PAUSE_S * 1e6
    assert paused.max < 5 * PAUSE_S * 1e6


def test_an_op_budget_is_sent_exactly_on_schedule(memcached_server, hot_path):
    workload = Workload.from_args({"ops": 600, "duration": None, "rate": "3k", "connections": 3, "keys": 100})
    raw = run_shard(workload, Target(memcached_server.host, memcached_server.port), f"ol3{hot_path}:")
    result = SlapResult(workload, raw)
    assert result.ops == 600 and result.errors == 0
    assert result.rate()["target"] == 3000.0 and result.rate()["arrivals"] == "poisson"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("fast", "rate='fast': expected requests per second such as 40000, '40k' or '40k/s'"),
        (0, "rate=0: must be more than 0 requests per second"),
        ("-5k", "rate='-5k': expected requests per second"),
    ],
)
def test_bad_rates_are_explained(value, message):
    with pytest.raises(WorkloadError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Workload.from_args({"rate": value})


def test_rate_strings_and_arrivals():
    assert Workload.from_args({"rate": "40k/s"}).rate == 40_000.0
    assert Workload.from_args({"rate": 1500}).rate == 1500.0
    with pytest.raises(WorkloadError, match="arrivals='bursty': allowed: poisson, uniform"):
        Workload.from_args({"arrivals": "bursty"})


def test_the_summary_shows_the_achieved_rate_beside_the_target(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.slap(duration="1s", rate="2k", arrivals="uniform", connections=2, keys=100)
        @pytest.mark.slap_thresholds("ops_per_sec >= 1k")
        def test_paced(slap):
            slap()
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--slap-json=out.json")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_paced*of 2,000*1/1 pass*"])
    (entry,) = json.loads((pytester.path / "out.json").read_text())["tests"].values()
    assert entry["rate"]["target"] == 2000.0 and entry["rate"]["arrivals"] == "uniform"
    assert 1_000 < entry["rate"]["achieved"] < 3_000


CLIENT_PAUSE_LOAD = """
import json, sys
from pytest_memaslap import Target, Workload, run_shard
from pytest_memaslap.stats.result import SlapResult

workload = Workload.from_args({"duration": "3s", "rate": "2k", "arrivals": "uniform", "connections": 4, "keys": 500})
print("ready", flush=True)
result = SlapResult(workload, run_shard(workload, Target(sys.argv[1], int(sys.argv[2])), "pause:"))
print(json.dumps({"send_lag": result.send_lag_us(), "max_us": result.max, "p999_us": result.p999,
                  "ops": result.ops, "limited": result.limited_by_load_generator(),
                  "hiccups": result.engine()["machine_hiccups_us"]}))
"""


def test_a_paused_load_process_shows_in_its_send_lag_its_latencies_and_its_flag(memcached_server, hot_path, tmp_path):
    """SIGSTOP of the load process itself for 60 ms: the sends it owed leave late, and say so.

    A tool that timed requests from when it sent them would report a calm run;
    ours counts from the schedule, so the pause is in the latencies, in the
    send lag, and the run is flagged as limited by the load generator.
    """
    import subprocess
    import sys
    import time

    script = tmp_path / "load.py"
    script.write_text(CLIENT_PAUSE_LOAD)
    process = subprocess.Popen(
        [sys.executable, str(script), memcached_server.host, str(memcached_server.port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    with reaped(process):
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        time.sleep(1.8)  # (preload, then about a second into the 3 s of load)
        process.send_signal(signal.SIGSTOP)
        time.sleep(0.06)
        process.send_signal(signal.SIGCONT)
        out = output_within(process, 60)
    assert process.returncode == 0, out
    found = json.loads(out.strip().splitlines()[-1])
    assert 5_000 <= found["ops"] <= 7_000, found
    assert found["send_lag"]["max"] >= 40_000, found  # (µs) the sends due during the pause left after it
    assert found["max_us"] >= 40_000, found  # and their latencies carry the wait
    assert found["limited"] and "its sends late by" in found["limited"], found
    if hot_path == "compiled":  # the hiccup meter's thread was stopped too: one of its 5 ms sleeps woke that late
        assert found["hiccups"]["max"] >= 40_000 and found["hiccups"]["count"] >= 200, found
    else:  # (the pure-Python engine has no meter: a Python thread would measure the event loop)
        assert found["hiccups"] is None, found


def test_a_rate_the_load_cannot_keep_is_named_under_the_summary(pytester):
    """An open loop far short of its rate: one note under the summary says so, and why it matters."""
    pytester.makeconftest("")
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.slap(duration="0.5s", rate="1M", connections=1, keys=100)
        def test_too_fast(slap):
            slap()
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    notes = [line for line in result.stdout.lines if "results limited by the load generator" in line]
    assert len(notes) == 1, result.stdout.str()
    assert "of the 1,000,000 requests/s asked for" in notes[0] and "add shards (--slap-shards)" in notes[0]


def test_the_pacers_spin_is_priced_apart_from_the_cost_per_request(memcached_server):
    """At 500 requests/s the pacer spins most of the time on purpose: that CPU is shown apart (``pacer_spin``), so
    ``user`` and ``system`` mean what they mean for a closed loop (they read 295 µs a request before)."""
    workload = Workload.from_args({"duration": "1s", "rate": 500, "connections": 2, "keys": 100})
    raw = run_shard(workload, Target(memcached_server.host, memcached_server.port), "spin:")
    cost = SlapResult(workload, raw).cpu_per_request()
    assert cost is not None and raw.pacer_spin_s > 0
    assert cost["pacer_spin"] > 3 * (cost["user"] + cost["system"]), cost

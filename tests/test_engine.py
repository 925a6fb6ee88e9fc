"""The load engine on its own, against the real memcached the plugin starts."""

from __future__ import annotations

import gc
import json
import os
import re
import signal
import socket
import struct
import threading
import time
from urllib.parse import unquote_to_bytes

import pytest

from pytest_memaslap import ShardPlan, SlapRunError, Target, Workload, run_shard
from pytest_memaslap.engine.shard import ShardRunner
from pytest_memaslap.memcached.server import ServerConfig, start_server
from pytest_memaslap.stats.results import ShardResult

pytestmark = pytest.mark.usefixtures("hot_path")  # every test here runs on the compiled core and its twin


def _target(server) -> Target:
    return Target(server.host, server.port)


def test_op_count_is_exact_and_pipelined(memcached_server, hot_path):
    workload = Workload.from_args({"ops": 10_007, "duration": None, "connections": 5, "window": 16, "keys": 300})
    result = run_shard(workload, _target(memcached_server), f"eng1{hot_path}:")
    assert result.measured.ops == 10_007
    assert result.phases["preload"].ops == 300
    assert result.measured.commands["get"].misses == 0


def test_poll_interval_keeps_every_count_exact_and_stops_with_the_run(no_new_memcached, hot_path):
    """A pipelined run whose loop sleeps between passes answers every request, as memcached counts them, sleeps
    with a 1 µs timer slack, and leaves no pause scheduled on its loop and the thread's slack as it was."""
    import asyncio

    from pytest_memaslap.engine import poll_interval

    prctl = poll_interval._prctl()
    slack = (lambda: prctl(poll_interval._PR_GET_TIMERSLACK, 0, 0, 0, 0)) if prctl else (lambda: None)
    passes = []
    pause = poll_interval.PollInterval._pause

    def counted(self):
        passes.append((self._stopped, slack()))
        pause(self)

    workload = Workload.from_args(
        {"ops": 6_000, "duration": None, "connections": 4, "window": 16, "keys": 300, "poll_interval": "50us"}
    )
    server = start_server(ServerConfig(threads=2, memory_mb=64))  # (its own: its counters are this run's alone)
    slack_before = slack()
    try:
        before = server.stats()
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(poll_interval.PollInterval, "_pause", counted)
            result = run_shard(workload, _target(server), f"poll{hot_path}:")
        after = server.stats()
    finally:
        server.stop()
    commands = result.measured.commands
    assert result.measured.ops == 6_000 and all(c.errors == 0 for c in commands.values())
    assert after["cmd_get"] - before["cmd_get"] == commands["get"].ops
    assert after["cmd_set"] - before["cmd_set"] == commands["set"].ops + 300  # (and the preload's)
    assert len(passes) > 10 and passes[-1][0] is True  # it paused, and its last call saw the stop and did not
    if prctl is not None:  # (Linux: the slack was 1 µs while it ran, and is the thread's own again)
        assert passes[0][1] == poll_interval._SLACK_NS and slack() == slack_before != poll_interval._SLACK_NS
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()  # (the run's loop is gone with it)


def test_poll_interval_through_the_plugin_notes_what_it_adds_to_each_latency(pytester, own_server):
    """A user who sets poll_interval sees in the summary that every latency includes up to that sleep, and the
    JSON keeps the setting beside the figures."""
    pytester.makepyfile(
        test_polled="""
        import pytest

        @pytest.mark.slap(ops=3000, duration=None, connections=4, window=16, keys=200, poll_interval="50us")
        @pytest.mark.slap_thresholds("errors == 0")
        def test_polled(slap):
            assert slap().ops == 3000
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", f"--memcached={own_server.address}", "--slap-json=r.json")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["note: *test_polled: poll_interval 50 µs: the load slept * so each latency includes up to 50 µs*"]
    )
    (test,) = json.loads((pytester.path / "r.json").read_text())["tests"].values()
    assert test["workload"]["poll_interval"] == pytest.approx(5e-5)


def test_sequential_pattern_walks_the_keyspace(memcached_server, hot_path):
    workload = Workload.from_args(
        {
            "ops": 1000,
            "connections": 1,
            "keys": 1000,
            "key_pattern": "sequential",
            "preload": False,
            "commands": {"set": 1.0},
        }
    )
    run_shard(workload, _target(memcached_server), f"eng2{hot_path}:")
    keys = _prefixed_keys(memcached_server, f"eng2{hot_path}:".encode())
    assert len(keys) == 1000  # a full sequential pass writes every key once


def _prefixed_keys(server, prefix: bytes) -> set[bytes]:
    import socket

    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(b"lru_crawler metadump all\r\n")
        data = b""
        while not data.endswith(b"END\r\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    keys = set()
    for line in data.splitlines():
        if line.startswith(b"key="):
            key = unquote_to_bytes(line.split(b" ", 1)[0][4:])
            if key.startswith(prefix):
                keys.add(key)
    return keys


def _run_shards(workload, server, prefix, count, sync_timeout=10.0, delays=()):
    """Run ``count`` shards of one workload side by side (threads), as xdist workers would."""
    results, errors = {}, {}

    def shard(index):
        time.sleep(delays[index] if index < len(delays) else 0)
        try:
            results[index] = run_shard(workload, _target(server), prefix, ShardPlan(index, count, sync_timeout))
        except SlapRunError as exc:
            errors[index] = exc

    threads = [threading.Thread(target=shard, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results, errors


def test_shards_own_disjoint_key_slices_and_start_together(memcached_server, hot_path):
    workload = Workload.from_args({"duration": "0.3s", "connections": 2, "keys": 1000, "commands": {"set": 1.0}})
    results, errors = _run_shards(workload, memcached_server, f"eng3{hot_path}:", 2, delays=(0, 0.5))
    assert not errors
    keys = _prefixed_keys(memcached_server, f"eng3{hot_path}:".encode())
    barrier_keys = {k for k in keys if b":sync-" in k}
    assert len(barrier_keys) == 6  # two barriers, each a counter and a marker per shard
    assert len(keys - barrier_keys) == 1000  # both halves of the keyspace, preloaded by their owners
    assert [r.phases["preload"].ops for r in results.values()] == [500, 500]
    # the barrier absorbed the late start of shard 1: the measured phases began together
    assert abs(results[0].started_at - results[1].started_at) < 0.2


def test_a_shard_that_never_arrives_fails_the_others_after_the_bound(memcached_server, hot_path):
    workload = Workload.from_args({"duration": "0.3s", "connections": 2, "keys": 100})
    results, errors = _run_shards(
        workload, memcached_server, f"eng10{hot_path}:", 3, sync_timeout=0.5, delays=(0, 0, 1.5)
    )
    assert {0, 1} <= set(errors)
    assert "only 2 of 3 shards reached the preload barrier within 0.5 s; missing: shard 2" in str(errors[0])


def test_same_seed_sends_the_same_requests(memcached_server, hot_path):
    workload = Workload.from_args(
        {"ops": 2000, "connections": 3, "keys": 5000, "preload": False, "commands": {"get": 0.5, "set": 0.5}}
    )
    a = run_shard(workload, _target(memcached_server), f"eng4a{hot_path}:")
    b = run_shard(workload, _target(memcached_server), f"eng4b{hot_path}:")
    for name in ("get", "set"):
        assert a.measured.commands[name].ops == b.measured.commands[name].ops
        assert a.measured.commands[name].bytes_sent == b.measured.commands[name].bytes_sent


def test_warmup_is_kept_apart_from_the_measured_phase(memcached_server, hot_path):
    workload = Workload.from_args({"duration": "0.3s", "warmup": "0.2s", "connections": 2, "keys": 100})
    result = run_shard(workload, _target(memcached_server), f"eng5{hot_path}:")
    assert result.phases["warmup"].ops > 0
    assert 0.3 <= result.measured.elapsed_s < 1.0
    assert 0.2 <= result.phases["warmup"].elapsed_s < 1.0


def test_a_killed_server_fails_the_run_quickly_with_what_was_done(no_new_memcached):
    server = start_server(ServerConfig(threads=1, memory_mb=64))
    try:
        workload = Workload.from_args({"duration": "30s", "connections": 4, "keys": 100})
        threading.Timer(0.5, server.process.kill).start()
        started = time.monotonic()
        with pytest.raises(SlapRunError, match="server closed the connection") as excinfo:
            run_shard(workload, _target(server), "eng6:")
        assert time.monotonic() - started < 10
        assert excinfo.value.partial is not None and excinfo.value.partial.measured.ops > 0
    finally:
        server.stop()


def test_a_stalled_server_fails_the_run_within_the_timeout(no_new_memcached):
    server = start_server(ServerConfig(threads=1, memory_mb=64))
    try:
        workload = Workload.from_args({"duration": "30s", "connections": 2, "keys": 100, "timeout": "0.5s"})
        threading.Timer(0.3, os.kill, (server.process.pid, signal.SIGSTOP)).start()
        with pytest.raises(
            SlapRunError, match=r"no reply from memcached at .* for 0.5 s \((\d+) requests? in flight\)"
        ) as info:
            run_shard(workload, _target(server), "eng7:")
        # the requests in flight are abandoned as timed out: errors, never latency samples
        in_flight = int(re.search(r"\((\d+) requests? in flight", str(info.value)).group(1))
        measured = info.value.partial.measured
        abandoned = sum(c.abandoned.get("timeout", 0) for c in measured.commands.values())
        assert abandoned == in_flight == sum(c.errors for c in measured.commands.values())
        for stats in measured.commands.values():
            assert stats.latency.total == stats.ops  # the histogram holds answered requests only
            assert stats.latency.max() < 400e6  # none waited out the 0.5 s timeout
        assert (
            info.value.partial.requests_sent == info.value.partial.phases["preload"].requests + measured.ops + abandoned
        )
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
        server.stop()


def test_refused_connection_is_a_clear_error():
    workload = Workload.from_args({"ops": 10, "connections": 1, "keys": 10})
    with pytest.raises(SlapRunError, match="cannot connect to memcached at 127.0.0.1:1"):
        run_shard(workload, Target("127.0.0.1", 1), "eng8:")


def test_a_name_that_does_not_resolve_is_one_error_and_no_asyncio_noise(caplog):
    workload = Workload.from_args({"ops": 10, "connections": 16, "keys": 10})
    with pytest.raises(SlapRunError, match="cannot connect to memcached at nohost.invalid:1"):
        run_shard(workload, Target("nohost.invalid", 1), "eng8:")
    gc.collect()  # (an unretrieved exception of a connection attempt is logged when its future is collected)
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]


def test_engine_runs_from_inside_a_running_event_loop(memcached_server, hot_path):
    import asyncio

    workload = Workload.from_args({"ops": 100, "connections": 1, "keys": 10})

    async def main():
        return run_shard(workload, _target(memcached_server), f"eng9{hot_path}:")

    assert asyncio.run(main()).measured.ops == 100


def _stop_both(server, box: dict) -> None:
    """Stop the original server and the one started in its place (if it was)."""
    if "restarted" in box:
        box["restarted"].kill()
        box["restarted"].wait()
    server.stop()


def _restart_on_same_port(server, after_s: float, down_s: float, box: dict) -> None:
    """Kill the server, then start a new memcached on the same port (the restart)."""
    import subprocess

    time.sleep(after_s)
    server.process.kill()
    server.process.wait()
    time.sleep(down_s)
    box["restarted"] = subprocess.Popen(
        ["memcached", "-l", "127.0.0.1", "-U", "0", "-p", str(server.port), "-t", "1", "-m", "64", "-u", "root"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_with_reconnect_a_restarted_server_costs_a_gap_not_the_run(no_new_memcached, monkeypatch):
    server = start_server(ServerConfig(threads=1, memory_mb=64))
    box: dict = {}
    losses: list[str] = []  # why connections dropped: a dying server may accept a reconnect and reset it too
    lost = ShardRunner.connection_lost
    monkeypatch.setattr(ShardRunner, "connection_lost", lambda self, c, why: (losses.append(why), lost(self, c, why)))
    try:
        workload = Workload.from_args(
            {"duration": "3s", "connections": 4, "keys": 100, "reconnect": True, "timeout": "5s"}
        )
        restart = threading.Thread(target=_restart_on_same_port, args=(server, 0.8, 0.5, box))
        restart.start()
        result = run_shard(workload, _target(server), "eng11:")
        restart.join()
        assert result.reconnects == 4, losses  # every connection came back, once: at its first reply
        assert 0.5 < result.reconnect_gap_s < 3.0  # the outage's wall time (0.5 s down), not a sum over connections
        timeline = [second.ops for second in result.measured.timeline]
        assert timeline[-1] > 0, f"no load after the restart: {timeline}"
        measured = result.measured.commands
        # requests in flight when a connection dropped are errors; nothing else is
        unanswered = sum(int(re.search(r"\((\d+) requests? unanswered\)", why).group(1)) for why in losses)
        assert 0 < sum(c.errors for c in measured.values()) == unanswered
        assert sum(c.abandoned.get("connection_lost", 0) for c in measured.values()) == unanswered
    finally:
        _stop_both(server, box)


def _reset_then_restart(server, after_s: float, resetting_s: float, box: dict) -> None:
    """Kill the server; for a while accept every connection on its port and reset it; then start memcached there."""
    import subprocess

    time.sleep(after_s)
    server.process.kill()
    server.process.wait()
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", server.port))
    listener.listen(16)
    listener.settimeout(0.02)
    end = time.monotonic() + resetting_s
    while time.monotonic() < end:
        try:
            accepted, _ = listener.accept()
        except TimeoutError:
            continue
        accepted.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = reset
        accepted.close()
        box["resets"] = box.get("resets", 0) + 1
    listener.close()
    box["restarted"] = subprocess.Popen(
        ["memcached", "-l", "127.0.0.1", "-U", "0", "-p", str(server.port), "-t", "1", "-m", "64", "-u", "root"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_a_reconnect_reset_before_its_first_reply_is_the_same_outage(no_new_memcached):
    """A server that accepts and then resets (one dying, or a proxy without a backend) has not come back."""
    server = start_server(ServerConfig(threads=1, memory_mb=64))
    box: dict = {}
    try:
        workload = Workload.from_args(
            {"duration": "2.5s", "connections": 2, "keys": 100, "reconnect": True, "timeout": "5s"}
        )
        restart = threading.Thread(target=_reset_then_restart, args=(server, 0.5, 0.4, box))
        restart.start()
        result = run_shard(workload, _target(server), "eng13:")
        restart.join()
        assert box.get("resets", 0) >= 2  # the reconnects met the resetting listener
        assert result.reconnects == 2  # each connection came back once, when memcached answered
        assert 0.4 < result.reconnect_gap_s < 3.0
        assert result.measured.timeline[-1].ops > 0
    finally:
        _stop_both(server, box)


def test_without_reconnect_a_restart_fails_the_run_clearly(no_new_memcached):
    server = start_server(ServerConfig(threads=1, memory_mb=64))
    box: dict = {}
    try:
        workload = Workload.from_args({"duration": "3s", "connections": 2, "keys": 100})
        restart = threading.Thread(target=_restart_on_same_port, args=(server, 0.5, 0.2, box))
        restart.start()
        with pytest.raises(SlapRunError, match="server closed the connection"):
            run_shard(workload, _target(server), "eng12:")
        restart.join()
    finally:
        _stop_both(server, box)


def test_every_command_is_counted_as_memcached_counts_it(no_new_memcached):
    """Each command's hits, misses and errors, and memcached's own counters, for a mix of all ten."""
    server = start_server(ServerConfig(threads=2, memory_mb=64))
    try:
        mix = {name: 0.1 for name in ("get", "set", "delete", "add", "replace", "append", "prepend", "touch")}
        mix.update({"incr": 0.1, "decr": 0.1})
        workload = Workload.from_args({"ops": 6_000, "duration": None, "connections": 3, "keys": 400, "commands": mix})
        before = server.stats()
        raw = run_shard(workload, _target(server), "allcmd:")
        after = server.stats()
    finally:
        server.stop()
    measured = raw.measured.commands
    assert sum(c.ops for c in measured.values()) == 6_000
    assert set(measured) == set(mix)
    assert all(c.errors == 0 for c in measured.values()), {n: c.errors for n, c in measured.items()}
    assert measured["incr"].misses == 0 and measured["decr"].misses == 0  # the counters were preloaded
    assert measured["add"].hits <= measured["delete"].hits  # add stores only where a delete made room
    moved = {name: after[name] - before[name] for name in after if isinstance(after[name], int)}
    preload = raw.phases["preload"].ops
    assert preload == 800  # every key and its counter
    assert moved["cmd_get"] == measured["get"].ops
    storage = sum(measured[n].ops for n in ("set", "add", "replace", "append", "prepend"))
    assert moved["cmd_set"] == storage + preload
    assert moved["delete_hits"] + moved["delete_misses"] == measured["delete"].ops
    assert moved["cmd_touch"] == measured["touch"].ops
    assert moved["incr_hits"] + moved["incr_misses"] == measured["incr"].ops
    assert moved["decr_hits"] + moved["decr_misses"] == measured["decr"].ops
    assert moved["touch_hits"] == measured["touch"].hits


@pytest.mark.parametrize("reconnect", [True, False])
def test_connections_the_server_drops_while_idle_reconnect_or_fail_the_run(no_new_memcached, reconnect):
    """memcached's idle_timeout (its idle thread closes within ~3 s) drops shard 0's connections while it
    waits at the barrier for shard 1, which starts 5 s late.

    With ``reconnect`` they come back and every request is counted; without,
    the run fails naming the idle connection (it used to go on and count nothing).
    """
    server = start_server(ServerConfig(threads=1, memory_mb=64, extra_args=("-o", "idle_timeout=1")))
    workload = Workload.from_args(
        {"ops": 400, "duration": None, "connections": 4, "keys": 100, "reconnect": reconnect, "timeout": "5s"}
    )
    outcomes: dict[int, object] = {}

    def shard(index: int, delay: float) -> None:
        time.sleep(delay)
        try:
            outcomes[index] = run_shard(workload, _target(server), "idle:", ShardPlan(index, 2, sync_timeout=10))
        except SlapRunError as exc:
            outcomes[index] = exc

    try:
        threads = [threading.Thread(target=shard, args=(0, 0.0))]
        if reconnect:  # (without, shard 0 fails while it waits: shard 1 need not come)
            threads.append(threading.Thread(target=shard, args=(1, 5.0)))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    finally:
        server.stop()
    first = outcomes[0]
    if reconnect:
        assert isinstance(first, ShardResult), first
        # Both of shard 0's connections were dropped and reopened; a reopened one may idle past the timeout again
        # before shard 1 comes, so each counts at least one reconnect, and at most one a second of waiting.
        assert 2 <= first.reconnects <= 2 * 6, first.reconnects
        assert sum(c.ops for c in first.measured.commands.values()) == 200
        assert all(c.errors == 0 for c in first.measured.commands.values())
    else:
        assert isinstance(first, SlapRunError) and "server closed the idle connection" in str(first), first


def test_the_same_seed_sends_byte_identical_requests(own_server, hot_path, monkeypatch):
    """One connection, a fixed op count and seed: a run on this hot path and one on the pure-Python twin
    send the same bytes (the server's bytes_read moves alike) and count the same replies, byte for byte."""
    from pytest_memaslap import hotpath

    workload = Workload.from_args(
        {"duration": None, "ops": 3000, "connections": 1, "keys": 500, "seed": 7, "preload": True}
        | {"commands": {"get": 0.6, "set": 0.3, "delete": 0.1}, "key_size": (16, 64), "value_size": (10, 900)}
    )
    runs = []
    for twin in (False, True):
        if twin:
            monkeypatch.setenv(hotpath.NO_EXTENSIONS, "1")
        own_server.flush()  # (both runs start from an empty cache: the deletes of the first do not change the second)
        before = own_server.stats()
        result = run_shard(workload, _target(own_server), "seed7:")
        after = own_server.stats()
        sent = {
            name: (c.ops, c.hits, c.misses, c.bytes_sent, c.bytes_received)
            for name, c in result.measured.commands.items()
        }
        moved = {name: after[name] - before[name] for name in ("bytes_read", "cmd_get", "cmd_set")}
        runs.append((result.implementation, moved, sent))
    assert [implementation for implementation, _, _ in runs] == [hot_path, "python"]
    assert runs[0][1:] == runs[1][1:]
    assert sum(ops for ops, *_ in runs[0][2].values()) == 3000


def test_a_blocked_loop_shows_in_the_load_processs_own_lag(memcached_server, hot_path):
    """A loop blocked 30 ms every second (here by a slow progress callback) shows as loop lag."""
    from pytest_memaslap.stats.result import SlapResult

    workload = Workload.from_args({"duration": "2.5s", "connections": 2, "keys": 100})
    raw = run_shard(
        workload,
        _target(memcached_server),
        f"eng14{hot_path}:",
        on_second=lambda done, second, totals: time.sleep(0.03),
    )
    assert 150 <= raw.loop_lag.total <= 300  # one probe every 10 ms (fewer on a busy machine)
    # the probe is due at most 10 ms after the block begins, so it waits at least ~20 of the 30 ms
    assert raw.loop_lag.max() >= 15e6
    assert 0 < raw.cpu_pct <= 110
    engine = SlapResult(workload, raw, "").engine()
    assert engine["loop_lag_us"]["max"] >= 15_000
    # the periodic work was timed: the tick, the watchdog's checks (ten a second), a refill
    assert all(0 < value < 1_000_000 for value in engine["periodic_max_us"].values()), engine["periodic_max_us"]
    for name, blocks in engine["periodic_us"].items():  # every block was counted, the longest beyond its ranks
        assert blocks["count"] > 0 and blocks["p50"] <= blocks["p99"] <= blocks["p999"], (name, blocks)
        assert blocks["p999"] <= engine["periodic_max_us"][name] * 1.01, (name, blocks)
    assert engine["periodic_us"]["stall_watchdog"]["count"] >= 15  # ten checks a second
    assert engine["periodic_us"]["timeline_close"]["count"] >= 2  # a tick a second
    assert engine["cpu_us_per_request"]["user"] > 0

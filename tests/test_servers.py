"""Several servers (--memcached=A,B, memaslap-py -s A,B): keys placed as pymemcache's HashClient places them."""

from __future__ import annotations

import socket
import subprocess
import sys
from urllib.parse import unquote

import pytest
from conftest import run_subprocess
from pymemcache.client.hash import HashClient

from pytest_memaslap import ShardPlan, Target, Workload, run_shard
from pytest_memaslap.memcached.server import ServerConfig, start_server
from pytest_memaslap.model.keyspace import build_keys


@pytest.fixture
def two_servers(no_new_memcached):
    servers = [start_server(ServerConfig(threads=1, memory_mb=64)) for _ in range(2)]
    try:
        yield servers
    finally:
        for server in servers:
            server.stop()


def test_the_load_and_hashclient_agree_on_every_keys_server(two_servers):
    a, b = two_servers
    workload = Workload.from_args({"ops": 3000, "duration": None, "connections": 4, "keys": 400, "key_size": 32})
    raw = run_shard(workload, [Target(a.host, a.port), Target(b.host, b.port)], "hc:")
    assert raw.measured.commands["get"].misses == 0 and raw.phases["preload"].ops == 400
    items = [a.stats()["curr_items"], b.stats()["curr_items"]]
    assert sum(items) == 400 and min(items) > 100  # spread over both
    keys = build_keys("hc:", range(400), ((32, 32, 1.0),), ShardPlan().rng(workload, "keys"))
    client = HashClient([(a.host, a.port), (b.host, b.port)])
    try:
        assert all(client.get(key.decode()) is not None for key in keys)  # each on the server HashClient asks
    finally:
        client.close()


def test_plugin_spreads_over_listed_servers_shards_included_and_cleans_up(pytester, two_servers):
    spec = ",".join(server.address for server in two_servers)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.slap(ops=2000, duration=None, connections=4, keys=300)
        @pytest.mark.slap_thresholds("errors == 0", "get.hit_ratio == 1")
        def test_two(slap):
            slap()
        """
    )
    run_subprocess(pytester, f"--memcached={spec}", "--slap-cleanup").assert_outcomes(passed=1)
    assert [_keys(server) for server in two_servers] == [[], []]
    run_subprocess(pytester, f"--memcached={spec}", "--slap-shards=2", "--slap-cleanup").assert_outcomes(passed=2)
    assert _keys(two_servers[1]) == []
    # what remains are the shards' barrier keys on the first server, which expire after 10 minutes
    left = _keys(two_servers[0])
    assert left and all("sync-" in key for key in left), left


def _keys(server) -> list[str]:
    """Every key on the server (memcached's lru_crawler metadump)."""
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(b"lru_crawler metadump all\r\n")
        data = b""
        while not data.endswith(b"END\r\n"):
            chunk = sock.recv(65536)
            assert chunk, "the server closed the connection"
            data += chunk
    return [unquote(line.split(" ", 1)[0].removeprefix("key=")) for line in data.decode().splitlines()[:-1]]


def test_memaslap_py_takes_a_server_list(two_servers):
    spec = ",".join(server.address for server in two_servers)
    done = subprocess.run(
        [sys.executable, "-m", "pytest_memaslap.cli.memaslap", "-s", spec, "-x", "2000", "-c", "4", "-w", "50"],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Ops: 2000 " in done.stdout and "get_misses: 0" in done.stdout
    assert all(server.stats()["curr_items"] > 0 for server in two_servers)


def test_too_few_connections_for_the_servers_is_explained(pytester, two_servers):
    spec = ",".join(server.address for server in two_servers)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.slap(ops=100, duration=None, connections=1, keys=100)
        def test_one(slap):
            slap()
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", f"--memcached={spec}")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*connections=1: fewer than 2 servers x 1 shard(s); use at least 2 connections*"])


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"HELLO there", "answered b'HELLO there...' to `version`: is it a memcached server?"),
        (b"HTTP/1.1 400 Bad Request\r\n\r\n", "answered b'HTTP/1.1 400 Bad Request\\r\\n\\r\\n' to `version`"),
    ],
)
def test_a_server_that_answers_garbage_is_named_as_such_not_as_silent(answer, message):
    """A tiny scripted socket (no memcached stand-in): it answers anything with ``answer``, keeps the line open."""
    import threading

    from pytest_memaslap.memcached.server import SASL_HINT, ServerError, connect_external

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        listener.settimeout(10)
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            conn.recv(100)
            conn.sendall(answer)
            conn.settimeout(5)
            try:
                conn.recv(100)  # (hold the connection open until the client gives up)
            except OSError:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with pytest.raises(ServerError) as info:
            connect_external(f"127.0.0.1:{port}", False, timeout=1.0)
    finally:
        listener.close()
        thread.join(10)
    assert message in str(info.value) and SASL_HINT not in str(info.value)


def test_a_stopped_server_leaves_no_log_behind(no_new_memcached):
    import os

    server = start_server(ServerConfig(threads=1, memory_mb=16))
    log = server.log_path
    assert log is not None and os.path.exists(log)
    server.stop()
    assert not os.path.exists(log)
    server.stop()  # (twice is harmless)


def test_server_logs_live_under_basetemp_and_stay_only_when_the_session_fails(pytester, no_new_memcached, monkeypatch):
    """Nothing in the system's temporary folder: under pytest's basetemp, removed after a passing session."""
    pytester.makepyfile(
        """
        import os
        import pytest

        @pytest.mark.slap(duration="0.3s", connections=1, keys=10)
        def test_load(slap):
            slap()
            assert os.environ.get("FAIL_IT") != "1"
        """
    )
    basetemp = pytester.path / "bt"
    passed = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--basetemp={basetemp}", timeout=120)
    passed.assert_outcomes(passed=1)
    assert list((basetemp / "memcached").iterdir()) == []
    monkeypatch.setenv("FAIL_IT", "1")
    failed = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--basetemp={basetemp}", timeout=120)
    failed.assert_outcomes(failed=1)
    kept = list((basetemp / "memcached").iterdir())
    assert len(kept) == 1 and kept[0].name.endswith(".log"), kept


def test_a_flush_is_done_when_flush_returns(own_server):
    """memcached_server.flush() waits for the server's OK: with two worker threads, a flush sent without
    waiting could land after the next connection's request (it once moved a test's counters)."""
    client = own_server.client()
    try:
        for round_number in range(30):
            client.set("flushed", b"x", noreply=False)
            before = own_server.stats()["cmd_flush"]
            own_server.flush()
            assert own_server.stats()["cmd_flush"] == before + 1, f"round {round_number}"
            assert client.get("flushed") is None
    finally:
        client.close()

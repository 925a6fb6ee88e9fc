"""memaslap-py: memaslap's options and report layout on this engine, run as users run it."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

COMMAND = [sys.executable, "-m", "pytest_memaslap.cli.memaslap"]
TIMEOUT_S = 90


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*COMMAND, *args], capture_output=True, text=True, timeout=TIMEOUT_S, check=False)


def _ops(output: str) -> int:
    match = re.search(r"^Run time: [0-9.]+s Ops: (\d+) TPS: \d+ Net_rate: [0-9.]+M/s$", output, re.M)
    assert match, output
    return int(match.group(1))


def test_an_op_count_run_prints_memaslaps_report_and_matches_the_servers_counters(own_server):
    before = own_server.stats()
    done = _run("-s", own_server.address, "-x", "3000", "-c", "4", "-w", "100", "-X", "200")
    after = own_server.stats()
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for line in ("servers : ", "threads count: 1", "concurrency: 4", "execute number: 3000", "get_prop=0.90"):
        assert line in out
    for block in ("Get Statistics (", "Set Statistics (", "Total Statistics (3000 events)", "Log2 Dist:"):
        assert block in out
    assert _ops(out) == 3000
    assert "get_misses: 0" in out  # the keyspace (concurrency x win_size = 400 keys) was set first
    moved = (after["cmd_get"] - before["cmd_get"]) + (after["cmd_set"] - before["cmd_set"])
    assert moved == 3000 + 400


def test_the_servers_side_is_reported_with_the_accounting_check(own_server):
    """Sampled from the parent process: every shard's requests, counted by the server, equal this run's."""
    done = _run("-s", own_server.address, "-x", "4000", "-c", "4", "-T", "2", "-w", "100")
    assert done.returncode == 0, done.stderr
    server = re.search(
        rf"^  {re.escape(own_server.address)}: (\d+) requests, .* CPU ([0-9.]+) us/request", done.stdout, re.M
    )
    assert server and int(server.group(1)) > 0 and float(server.group(2)) > 0, done.stdout
    assert re.search(r"^  accounting: the servers counted (\d+) requests, this run sent \1: equal$", done.stdout, re.M)
    off = _run("-s", own_server.address, "-x", "500", "-c", "2", "--server-stats=off")
    assert off.returncode == 0 and "Server Statistics" not in off.stdout


def test_proxy_stats_that_are_not_a_proxys_are_refused_before_the_run(memcached_server):
    done = _run("-s", memcached_server.address, "-x", "100", "--proxy-stats", memcached_server.address)
    assert done.returncode == 2 and "Run time" not in done.stdout
    assert f"--proxy-stats={memcached_server.address}: no twemproxy stats there (" in done.stderr
    assert done.stderr.count("memaslap-py: error") == 1


def test_threads_run_shard_processes_that_add_up_over_the_binary_protocol(memcached_server):
    done = _run("-s", memcached_server.address, "-x", "2000", "-c", "4", "-T", "2", "-w", "50", "-B")
    assert done.returncode == 0, done.stderr
    assert "threads count: 2" in done.stdout and _ops(done.stdout) == 2000


def test_periodic_statistics_and_a_config_file(memcached_server, tmp_path):
    config = tmp_path / "memaslap.cfg"
    config.write_text("key\n32 32 1\nvalue\n100 100 1\ncmd\n0 0.5\n1 0.5\n")
    done = _run("-s", memcached_server.address, "-t", "2s", "-S", "1s", "-c", "2", "-w", "50", "-F", str(config))
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("Period ") >= 1 and done.stdout.count("Global ") >= 1
    assert "set_prop=0.50" in done.stdout and "get_prop=0.50" in done.stdout


def test_shard_processes_print_every_period_the_last_one_too(memcached_server):
    """-T 2 -S 1s for 3 s: three periods, as with one process (the last was lost when the shards ended)."""
    done = _run("-s", memcached_server.address, "-t", "3s", "-S", "1s", "-T", "2", "-c", "4")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("Period ") == 3, done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-U"], "transport='udp': UDP carries gets only"),
        (["-e", "2"], "expire=2.0: a proportion from 0 to 1"),
        (["-o", "1.5"], "overwrite=1.5: a proportion from 0 to 1"),
        (["-p", "2"], "-p/--rep_write: writes only to the first N servers, for servers that replicate each other"),
        (["-c", "many"], "-c/--concurrency='many': expected a whole number"),
        (["-T", "9", "-c", "4"], "-T/--threads=9: from 1 to the number of connections (4)"),
        (["-d", "500"], "division=500: at most 100 keys per get"),
    ],
)
def test_options_this_engine_does_not_offer_are_refused_with_the_reason(args, message):
    done = _run("-s", "127.0.0.1:1", *args)
    assert done.returncode == 2
    assert message in done.stderr


def test_a_dead_server_fails_clearly():
    twice = _run("-s", "127.0.0.1:1,127.0.0.1:1")
    assert twice.returncode == 2 and "a server is listed twice" in twice.stderr
    dead = _run("-s", "127.0.0.1:1", "-x", "10", "-c", "1")
    assert dead.returncode == 1 and "cannot connect to memcached at 127.0.0.1:1" in dead.stderr


def test_values_above_the_servers_item_size_limit_are_refused_before_the_run(memcached_server):
    """Sent anyway, 2 MB values to a 1 MiB server never end and grow the load process by gigabytes."""
    done = _run("-s", memcached_server.address, "-X", "2000000", "-t", "2s", "-c", "2")
    assert done.returncode == 2
    assert "exceed the server's item_size_max of 1048576 bytes" in done.stderr
    assert "use a smaller -X, or start memcached with a larger -I" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_name_that_does_not_resolve_is_one_message():
    done = _run("-s", "nohost.invalid:1", "-t", "1s", "-T", "2", "-c", "4")
    assert done.returncode == 1
    assert "cannot connect to memcached at nohost.invalid:1" in done.stderr
    assert "never retrieved" not in done.stderr and "Traceback" not in done.stderr
    assert "Total Statistics" not in done.stdout  # nothing ran: no empty report


def test_a_server_that_answers_junk_is_named_at_once():
    """A scripted socket that answers every request with a greeting: refused as the plugin refuses it, not after a
    no-reply timeout."""
    import socket
    import threading
    import time

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def answer() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            with client:
                client.recv(4096)
                client.sendall(b"HELLO there\r\n")

    threading.Thread(target=answer, daemon=True).start()
    try:
        started = time.monotonic()
        done = _run("-s", f"127.0.0.1:{port}", "-t", "2s", "-c", "1")
        elapsed = time.monotonic() - started
    finally:
        listener.close()
    assert done.returncode == 2, done.stderr
    assert "answered b'HELLO there\\r\\n' to `version`: is it a memcached server?" in done.stderr
    assert elapsed < 30 and "Traceback" not in done.stderr


def test_a_fill_the_server_cannot_hold_is_refused_at_once(own_server):
    """-X 500000 on a 64 MB server: refused with the numbers (it was still filling after 30 s)."""
    done = _run("-s", own_server.address, "-X", "500000", "-t", "3s")
    assert done.returncode == 2, done.stderr
    assert "the fill before gets: the preload of" in done.stderr and "more than 4 times the 67 MB" in done.stderr

"""Ctrl-C, SIGTERM and SIGKILL of pytest mid-run: the load stops and no memcached is left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
from conftest import memcached_pids, output_within, reaped, start_pytest

LONG_TEST = """
import pytest

@pytest.mark.slap(duration="60s", connections=4, keys=1000)
def test_long(slap):
    slap()
"""


def _start_long_run(pytester, ctrl_c: bool = True) -> subprocess.Popen[bytes]:
    pytester.path.joinpath("test_long_run.py").write_text(LONG_TEST)
    return start_pytest(pytester.path, "test_long_run.py", "--slap-json=r.json", ctrl_c=ctrl_c)


def _wait_for_server(tag: str, timeout: float = 20.0) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = memcached_pids(tag)
        if pids:
            return pids
        time.sleep(0.05)
    raise AssertionError("the run never started its memcached")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_stops_the_run_and_the_server(pytester, no_new_memcached, signum):
    with reaped(_start_long_run(pytester)) as process:
        _wait_for_server(no_new_memcached)
        time.sleep(1.0)  # well into the measured phase
        process.send_signal(signum)
        out = output_within(process, 15)
    assert process.returncode == pytest.ExitCode.INTERRUPTED, out.decode()
    assert b"KeyboardInterrupt" in out, out.decode()
    # what was measured until the signal is reported, marked as interrupted
    assert b"interrupted" in out.split(b"slap summary")[-1], out.decode()
    (test,) = json.loads((pytester.path / "r.json").read_text())["tests"].values()
    assert test["interrupted"] is True
    assert test["ops"] > 0 and test["duration_s"] < 30


def test_sigterm_stops_a_run_started_in_the_background_where_ctrl_c_is_ignored(pytester, no_new_memcached):
    """A shell's background job ignores SIGINT; a CI runner's SIGTERM must still end the load and keep its numbers."""
    with reaped(_start_long_run(pytester, ctrl_c=False)) as process:
        _wait_for_server(no_new_memcached)
        time.sleep(1.0)
        process.send_signal(signal.SIGINT)  # ignored, as it was asked to be
        time.sleep(0.5)
        assert process.poll() is None
        process.send_signal(signal.SIGTERM)
        out = output_within(process, 15)
    assert process.returncode == pytest.ExitCode.INTERRUPTED, out.decode()
    (test,) = json.loads((pytester.path / "r.json").read_text())["tests"].values()
    assert test["interrupted"] is True and test["ops"] > 0


def test_a_killed_pytest_takes_its_server_with_it(pytester, no_new_memcached):
    process = _start_long_run(pytester)
    try:
        servers = _wait_for_server(no_new_memcached)
        process.kill()
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and memcached_pids(no_new_memcached):
        time.sleep(0.05)
    assert not memcached_pids(no_new_memcached), f"orphaned memcached: {servers}"
    assert all(not os.path.exists(f"/proc/{pid}/cmdline") or pid not in memcached_pids() for pid in servers)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_while_a_large_keyspace_is_built_ends_the_run_at_once(pytester, no_new_memcached, signum):
    """Building 3M keys takes seconds; the signal must not wait for it, and asyncio must not complain."""
    pytester.path.joinpath("test_big.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.slap(duration='60s', connections=4, keys='3M', preload=False)\n"
        "def test_big(slap):\n    slap()\n"
    )
    with reaped(start_pytest(pytester.path, "test_big.py")) as process:
        _wait_for_server(no_new_memcached)
        time.sleep(1.5)  # the keyspace is being built
        process.send_signal(signum)
        signalled = time.monotonic()
        out = output_within(process, 30)
        ended_after = time.monotonic() - signalled
    assert process.returncode == pytest.ExitCode.INTERRUPTED, out.decode()
    # about 1.4 s alone here (the summary, the server's stop, freeing 3M keys); twice that beside another test
    assert ended_after < 6.0, f"the run ended {ended_after:.1f} s after the signal"
    assert b"never retrieved" not in out and b"CancelledError" not in out, out.decode()


def test_an_interrupted_run_still_deletes_its_keys_with_cleanup(pytester, no_new_memcached):
    """--slap-cleanup on a shared server: an interrupt must not leave the run's keys behind."""
    from test_plugin import _keys

    from pytest_memaslap.memcached.server import ServerConfig, start_server

    server = start_server(ServerConfig(threads=1, memory_mb=64))
    try:
        client = server.client()
        client.set("precious", b"keep me")
        client.close()
        pytester.path.joinpath("test_long_run.py").write_text(LONG_TEST.replace("keys=1000", "keys=5000"))
        args = ("test_long_run.py", f"--memcached={server.address}", "--slap-cleanup")
        with reaped(start_pytest(pytester.path, *args)) as process:
            deadline = time.monotonic() + 20
            while len(_keys(server)) < 100 and time.monotonic() < deadline:  # the load is writing its keys
                time.sleep(0.1)
            time.sleep(0.5)
            process.send_signal(signal.SIGINT)
            out = output_within(process, 30)
        assert process.returncode == pytest.ExitCode.INTERRUPTED, out.decode()
        assert _keys(server) == {b"precious"}, out.decode()[-2000:]
    finally:
        server.stop()


def test_an_interrupted_capacity_search_reports_the_steps_it_ran(pytester, no_new_memcached):
    """Ctrl-C mid-search: the steps done so far are in the summary and the JSON, and the run stops at once."""
    pytester.path.joinpath("test_search.py").write_text(
        """
import pytest

@pytest.mark.slap(connections=4, keys=1000)
@pytest.mark.slap_capacity(slo="p99 < 50ms", start="500", step="0.5s", max_steps=100, time_limit="100s")
def test_search(slap):
    slap()
"""
    )
    with reaped(start_pytest(pytester.path, "test_search.py", "--slap-json=r.json")) as process:
        _wait_for_server(no_new_memcached)
        time.sleep(3.0)  # a few steps in
        process.send_signal(signal.SIGINT)
        out = output_within(process, 15)
    assert process.returncode == pytest.ExitCode.INTERRUPTED, out.decode()
    assert b"test_search: capacity" in out.split(b"slap summary")[-1], out.decode()
    (test,) = json.loads((pytester.path / "r.json").read_text())["tests"].values()
    assert test["interrupted"] is True
    assert len(test["capacity"]["steps"]) >= 2, test["capacity"]


@pytest.mark.parametrize("shards", [1, 2])
def test_two_quick_interrupts_still_keep_the_result_and_delete_the_keys(pytester, no_new_memcached, shards):
    """A second Ctrl-C 0.2 s after the first (a user who presses twice) must not cut the stop short: exit 2, the
    partial result (merged over the shards) in the JSON, the keys deleted."""
    from test_plugin import _keys

    from pytest_memaslap.memcached.server import ServerConfig, start_server

    server = start_server(ServerConfig(threads=1, memory_mb=64))
    try:
        pytester.path.joinpath("test_long_run.py").write_text(LONG_TEST.replace("keys=1000", "keys=5000"))
        args = ["test_long_run.py", f"--memcached={server.address}", "--slap-cleanup", "--slap-json=r.json"]
        args += [f"--slap-shards={shards}"] if shards > 1 else []
        with reaped(start_pytest(pytester.path, *args, new_session=True)) as process:
            deadline = time.monotonic() + 30
            while len(_keys(server)) < 100 and time.monotonic() < deadline:  # the load is writing its keys
                time.sleep(0.1)
            time.sleep(0.5)
            os.killpg(process.pid, signal.SIGINT)  # (the whole group, as a terminal's Ctrl-C: workers too)
            time.sleep(0.2)
            os.killpg(process.pid, signal.SIGINT)
            out = output_within(process, 40)
        assert process.returncode == pytest.ExitCode.INTERRUPTED, out.decode()[-3000:]
        assert b"Traceback" not in out, out.decode()[-3000:]
        (test,) = json.loads((pytester.path / "r.json").read_text())["tests"].values()
        assert test["interrupted"] and test["ops"] > 0 and test["shards"] == shards
        left = {key for key in _keys(server) if b":sync-" not in key}  # (the barriers' few keys expire in 10 min)
        assert left == set(), out.decode()[-2000:]
    finally:
        server.stop()

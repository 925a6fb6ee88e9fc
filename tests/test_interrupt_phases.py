"""Ctrl-C in every phase of a run: start-up, preload, shard barrier, drain, cleanup. Each ends promptly, cleanly.

The load itself and the keyspace build are in ``test_interrupt.py``. Every
case sends a real signal to a real pytest (or, for the barrier, interrupts
the engine the way the signal handler does) at a moment the test makes sure
of by watching the real server, and checks how long the run took to end.
The bounds are generous (a shared CI machine); docs/faults.md gives the times
measured.
"""

from __future__ import annotations

import os
import signal
import stat
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from conftest import output_within, reaped, start_pytest

from pytest_memaslap import ShardPlan, Target, Workload, run_shard
from pytest_memaslap.engine.loop import interrupt_running

END_BOUND_S = 8.0  # signal to exit: 1.4-2.5 s here alone, up to 7 s beside a soak; a hang waits 30 s or more


def _stats(server) -> dict[str, int]:
    client = server.client()
    try:
        return {k.decode(): int(v) for k, v in client.stats().items() if isinstance(v, int)}
    finally:
        client.close()


def _wait_until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the run never reached the phase under test")
        time.sleep(0.02)


def _interrupt(process, signum: int = signal.SIGINT) -> tuple[bytes, float]:
    process.send_signal(signum)
    signalled = time.monotonic()
    out = output_within(process, 60)
    took = time.monotonic() - signalled
    print(f"ended {took:.2f} s after the signal")
    return out, took


def _ended_interrupted(process, out: bytes, took: float, bound_s: float = END_BOUND_S) -> None:
    assert process.returncode == pytest.ExitCode.INTERRUPTED, out.decode()
    assert took < bound_s, f"ended {took:.1f} s after the signal"


def _test_file(pytester, mark: str) -> None:
    pytester.makepyfile(
        test_phase=f"""
        import pytest

        @pytest.mark.slap({mark})
        def test_phase(slap):
            slap()
        """
    )


def test_during_start_up(pytester, tmp_path):
    """memcached is slow to answer: Ctrl-C while the plugin waits for it ends the run, and the process with it."""
    pid_file = tmp_path / "pid"
    slow = tmp_path / "slow-memcached"
    slow.write_text(
        textwrap.dedent(
            f"""\
            #!{sys.executable}
            import os, sys, time
            open({str(pid_file)!r}, "w").write(str(os.getpid()))
            time.sleep(30)
            os.execvp("memcached", ["memcached", *sys.argv[1:]])
            """
        )
    )
    slow.chmod(slow.stat().st_mode | stat.S_IXUSR)
    _test_file(pytester, "duration='5s'")
    with reaped(start_pytest(pytester.path, f"--memcached-bin={slow}")) as process:
        _wait_until(pid_file.exists)
        time.sleep(0.5)
        out, took = _interrupt(process)
    _ended_interrupted(process, out, took)
    starting = int(pid_file.read_text())
    _wait_until(lambda: not Path(f"/proc/{starting}").exists() or _zombie(starting), timeout=5)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] == "Z"
    except OSError:
        return True


def test_during_preload(pytester, own_server):
    """300k values being written: Ctrl-C stops the preload and the run at once."""
    _test_file(pytester, "duration='5s', keys='300k', value_size=128, preload=True")  # (fits 64 MB: refused beyond 4x)
    with reaped(start_pytest(pytester.path, f"--memcached={own_server.address}", "--slap-json=r.json")) as process:
        _wait_until(lambda: _stats(own_server)["curr_items"] > 2000)
        out, took = _interrupt(process)
    _ended_interrupted(process, out, took)
    assert _stats(own_server)["curr_items"] < 300_000  # (it did stop before the end of the preload)
    assert b"never retrieved" not in out and b"Traceback" not in out.split(b"KeyboardInterrupt")[0], out.decode()


def test_during_the_drain(pytester, own_server):
    """The server stops answering just before the end: the drain waits for the replies, and Ctrl-C ends the wait."""
    _test_file(pytester, "duration='2s', connections=4, keys=1000, timeout='30s'")
    server_pid = own_server.process.pid
    with reaped(start_pytest(pytester.path, f"--memcached={own_server.address}", "--slap-json=r.json")) as process:
        try:
            _wait_until(lambda: _stats(own_server)["cmd_get"] > 100)
            time.sleep(1.5)
            os.kill(server_pid, signal.SIGSTOP)
            time.sleep(1.5)  # past the 2 s: draining, with requests in flight that will not be answered
            out, took = _interrupt(process)
        finally:
            os.kill(server_pid, signal.SIGCONT)
    _ended_interrupted(process, out, took)
    assert b"interrupted" in out.split(b"slap summary")[-1], out.decode()


def test_during_cleanup(pytester, own_server):
    """Ctrl-C while --slap-cleanup deletes 200k keys: the deletes go on, bounded, and the run ends."""
    _test_file(pytester, "duration='1s', keys='200k', value_size=16, preload=True, connections=2")
    with reaped(start_pytest(pytester.path, f"--memcached={own_server.address}", "--slap-cleanup")) as process:
        _wait_until(lambda: _stats(own_server).get("delete_hits", 0) > 1000)
        out, took = _interrupt(process)
    _ended_interrupted(process, out, took, 5 + END_BOUND_S)  # (the cleanup after an interrupt has 5 s of its own)
    left = _stats(own_server)["curr_items"]
    assert left == 0 or b"may be left on the server" in out, (left, out.decode())


def test_at_the_shard_barrier(own_server):
    """A shard waits at its barrier for one that never comes: an interrupt ends the wait at once, not at the timeout."""
    workload = Workload.from_args({"duration": "2s", "connections": 2, "keys": 1000})
    box: dict[str, object] = {}

    def shard() -> None:
        try:
            run_shard(workload, Target(own_server.host, own_server.port), "bar:", ShardPlan(0, 2, 60.0))
        except BaseException as exc:  # noqa: BLE001 - what ended it is the result
            box["ended"] = exc
        box["at"] = time.monotonic()

    thread = threading.Thread(target=shard)
    thread.start()
    _wait_until(lambda: _stats(own_server)["curr_items"] >= 1)  # the barrier's own key: it is waiting
    time.sleep(0.3)
    assert interrupt_running()
    signalled = time.monotonic()
    thread.join(30)
    assert not thread.is_alive()
    assert isinstance(box["ended"], KeyboardInterrupt), box
    took = box["at"] - signalled  # type: ignore[operator]
    print(f"ended {took:.2f} s after the interrupt")
    assert took < END_BOUND_S

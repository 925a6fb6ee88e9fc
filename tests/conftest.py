"""Shared helpers for the plugin's own tests (the plugin itself is loaded via its entry point)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

# loaded once, here: numpy cannot load twice in a process, and pytester's in-process runs drop the modules a
# run imported (the verdicts load scipy when they first judge a call)
import scipy.special  # noqa: F401

from pytest_memaslap.memcached.server import ServerConfig, start_server

# the runs the tests start read the summary's whole rows: a terminal wide enough for every column and name
# (tests/test_columns.py sets its own width, to check the fitting)
os.environ["COLUMNS"] = "250"

TAG_VARIABLE = "PYTEST_MEMASLAP_TEST_TAG"
SUBPROCESS_TIMEOUT_S = 120


def run_subprocess(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """``pytester.runpytest_subprocess`` with the cache off and a bound: a hung run fails, never waits."""
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=SUBPROCESS_TIMEOUT_S)


def memcached_pids(tag: str | None = None) -> set[int]:
    """PIDs of live memcached processes; with ``tag``, only those started under that tag.

    Processes inherit the environment, so a memcached started by a test (or by
    a pytest the test ran) carries the test's tag even after its parent died.
    """
    pids = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            with open(f"/proc/{entry}/stat") as f:
                state = f.read().rsplit(")", 1)[-1].split()[0]
            environ = b""
            if tag is not None:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    environ = f.read()
        except OSError:
            continue
        if not argv or os.path.basename(argv[0]) != b"memcached" or state == "Z":
            continue
        if tag is not None and f"{TAG_VARIABLE}={tag}".encode() not in environ.split(b"\0"):
            continue
        pids.add(int(entry))
    return pids


@pytest.fixture
def no_new_memcached(monkeypatch):
    """Fails the test if a memcached started during it is still running afterwards."""
    tag = uuid.uuid4().hex
    monkeypatch.setenv(TAG_VARIABLE, tag)
    yield tag
    deadline = time.monotonic() + 5  # (a server signalled as its parent died may take a moment to exit)
    while (leftover := memcached_pids(tag)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not leftover, f"memcached processes left behind: {sorted(leftover)}"


@pytest.fixture
def own_server(no_new_memcached):
    """A server for this test alone: its counters move only with this test's load."""
    server = start_server(ServerConfig(threads=2, memory_mb=64))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["compiled", "python"])
def hot_path(request, monkeypatch):
    """Runs a test on each hot path, chosen as a user chooses: the compiled core, then its pure-Python twin.

    The compiled one must be there in CI (``.ci/setup`` builds it); elsewhere its absence skips.
    """
    from pytest_memaslap import hotpath
    from pytest_memaslap.engine.hot.connection import CompiledConnection

    if request.param == "python":
        monkeypatch.setenv(hotpath.NO_EXTENSIONS, "1")
        return request.param
    monkeypatch.delenv(hotpath.NO_EXTENSIONS, raising=False)
    if CompiledConnection is None:
        if os.environ.get("CI"):
            pytest.fail("the compiled hot path is not built; .ci/setup builds it with a C compiler")
        pytest.skip("the compiled hot path is not built here")
    return request.param


def output_within(process: subprocess.Popen[bytes], timeout: float) -> bytes:
    """The process's output once it ends; if it does not end within ``timeout``, fail with all it printed."""
    try:
        return process.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        process.kill()
        out = process.communicate(timeout=10)[0] or b""
        printed = out.decode(errors="replace")
        raise AssertionError(f"still running {timeout:g} s later; it printed:\n{printed}") from None


@contextmanager
def reaped(process: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    """The process; on the way out, killed if it still runs, and waited for: a failed test leaves none behind."""
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def start_pytest(cwd: Path, *args: str, ctrl_c: bool = True, new_session: bool = False) -> subprocess.Popen[bytes]:
    """pytest in a process of its own, output captured, as a user starts it from a terminal.

    Ctrl-C is enabled in it (``ctrl_c=False``: ignored, as in a job a shell
    started in the background) whatever this test process inherited, so the
    interrupt tests mean the same when the suite itself runs in the background.
    """
    disposition = signal.SIG_DFL if ctrl_c else signal.SIG_IGN
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=new_session,
        preexec_fn=lambda: signal.signal(signal.SIGINT, disposition),
    )


@dataclass
class Link:
    """A network namespace joined to this one by a /30 veth link: ``near`` is our side's address and device."""

    namespace: str
    near: str
    far: str
    device: str

    def run(self, *command: str, **kwargs) -> subprocess.CompletedProcess[str]:
        """A command inside the namespace."""
        return subprocess.run(["ip", "netns", "exec", self.namespace, *command], text=True, **kwargs)


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@contextmanager
def namespace_link(subnet: int, name: str = "slap") -> Iterator[Link]:
    """A namespace and its veth link (10.231.SUBNET.1 here, .2 there), removed afterwards; skips where not allowed."""
    tag = uuid.uuid4().hex[:6]
    ns, here, there = f"{name}{tag}", f"{name[:4]}{tag}a", f"{name[:4]}{tag}b"
    made = subprocess.run(["ip", "netns", "add", ns], capture_output=True, text=True, timeout=10)
    if made.returncode != 0:  # e.g. a container without CAP_SYS_ADMIN
        pytest.skip(f"cannot create network namespaces here: {made.stderr.strip()}")
    near, far = f"10.231.{subnet}.1", f"10.231.{subnet}.2"
    try:
        ip("link", "add", here, "type", "veth", "peer", "name", there)
        ip("link", "set", there, "netns", ns)
        ip("addr", "add", f"{near}/30", "dev", here)
        ip("link", "set", here, "up")
        ip("-n", ns, "addr", "add", f"{far}/30", "dev", there)
        ip("-n", ns, "link", "set", there, "up")
        ip("-n", ns, "link", "set", "lo", "up")
        ip("-n", ns, "route", "add", "default", "via", near)
        yield Link(ns, near, far, here)
    finally:
        # deleting a namespace removes its veth end, and the pair goes with it
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


needs_namespaces = pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.geteuid() != 0 or shutil.which("ip") is None,
    reason="needs Linux, root and iproute2 to create network namespaces",
)

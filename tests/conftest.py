"""Shared helpers for the plugin's own tests (the plugin itself is loaded via its entry point)."""

from __future__ import annotations

import os

import pytest


def memcached_pids() -> set[int]:
    """PIDs of every memcached process on the machine that listens on loopback (ours look like that)."""
    pids = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == b"memcached" and b"127.0.0.1" in argv:
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if f.read().split(")")[-1].split()[0] == "Z":
                        continue
            except OSError:
                continue
            pids.add(int(entry))
    return pids


@pytest.fixture
def no_new_memcached():
    """Fails the test if a memcached started during it is still running afterwards."""
    before = memcached_pids()
    yield
    leftover = memcached_pids() - before
    assert not leftover, f"memcached processes left behind: {sorted(leftover)}"

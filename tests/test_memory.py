"""A nightly suite of many slap() calls stays flat: what a call allocates is freed when it ends."""

from __future__ import annotations

from conftest import run_subprocess

MANY_CALLS = """
import pytest

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 1e6

@pytest.mark.slap(duration="0.3s", connections=16, window=4, keys=20_000, preload=True,
                  commands={"get": 0.8, "set": 0.15, "delete": 0.05}, value_size=(64, 8192), verify=0.05)
def test_many_calls(slap):
    sizes = []
    for seed in range(14):
        slap(seed=seed)
        sizes.append(rss_mb())
    growth = sizes[-1] - sizes[3]  # (after the first calls have loaded what every call shares)
    print(f"RSS MB {[round(s) for s in sizes]} growth {growth:.1f}")
    assert growth < 40, sizes
"""


def test_many_calls_in_one_session_do_not_grow_memory(pytester):
    pytester.makepyfile(MANY_CALLS)
    result = run_subprocess(pytester, "-s")
    result.stdout.fnmatch_lines(["*RSS MB*growth*"])
    result.assert_outcomes(passed=1)

"""The compiled hiccup meter: a thread that sleeps a fixed interval at a time and counts how late it woke."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time

import pytest

from pytest_memaslap import hotpath
from pytest_memaslap.engine import selfcheck
from pytest_memaslap.stats.histogram import Histogram, bucket_index

try:
    from pytest_memaslap.engine import _hiccups
except ImportError:
    if os.environ.get("CI"):  # CI builds it (.ci/setup): its absence there is a failure, not a skip
        raise
    pytest.skip("the compiled hiccup meter is not built here", allow_module_level=True)


def test_the_meter_counts_in_the_histograms_buckets():
    rng = random.Random(5)
    values = [0, 1, 255, 256, 257, 1_000, 10**6, 10**9, 2**62, -5]
    values += [rng.getrandbits(rng.randint(1, 62)) for _ in range(20_000)]
    assert [_hiccups.bucket_of(v) for v in values] == [bucket_index(v) for v in values]


def test_the_meter_wakes_once_an_interval_and_sees_a_busy_main_thread_as_no_hiccup():
    """The meter holds no GIL: a Python loop spinning in the main thread does not make it late."""
    meter = _hiccups.HiccupMeter(1_000_000)
    meter.start()
    assert meter.running
    ends = time.perf_counter() + 0.4
    while time.perf_counter() < ends:  # (the GIL held the whole time)
        pass
    counts = meter.stop()
    assert not meter.running
    hiccups = Histogram.from_sparse(counts)
    assert 100 <= hiccups.total <= 401  # at most one wake-up a millisecond (fewer on a busy machine)
    assert hiccups.percentile(50.0) < 1e6 * 0.5  # most wake-ups on time: the GIL does not hold the meter back


def test_a_stopped_process_is_a_hiccup_and_signals_still_reach_the_main_thread():
    """SIGSTOP of this process (by a child) stops the meter too; it wakes that late. SIGUSR1 lands in Python."""
    caught = []
    previous = signal.signal(signal.SIGUSR1, lambda *_: caught.append(True))
    meter = _hiccups.HiccupMeter(1_000_000)
    pid = os.getpid()
    try:
        meter.start()
        time.sleep(0.05)
        stopper = subprocess.Popen(["sh", "-c", f"kill -STOP {pid}; sleep 0.05; kill -CONT {pid}; kill -USR1 {pid}"])
        assert stopper.wait(timeout=10) == 0
        ends = time.monotonic() + 5
        while not caught and time.monotonic() < ends:
            time.sleep(0.01)
    finally:
        hiccups = Histogram.from_sparse(meter.stop())
        signal.signal(signal.SIGUSR1, previous)
    assert caught  # (the meter's thread blocks every signal: Python's handler ran in the main thread)
    assert hiccups.max() >= 30e6  # (ns) it was due during the stop and woke after it


def test_the_meter_refuses_a_bad_interval_and_a_second_start():
    with pytest.raises(ValueError, match="interval_ns=0: expected a positive number of nanoseconds"):
        _hiccups.HiccupMeter(0)
    meter = _hiccups.HiccupMeter()
    meter.start()
    try:
        with pytest.raises(RuntimeError, match="already running"):
            meter.start()
    finally:
        counts = meter.stop()
    assert meter.stop() == counts  # (a second stop changes nothing)


def test_the_pure_python_engine_measures_no_hiccups(monkeypatch):
    monkeypatch.setenv(hotpath.NO_EXTENSIONS, "1")
    assert selfcheck.hiccup_meter() is None
    monkeypatch.delenv(hotpath.NO_EXTENSIONS)
    assert selfcheck.hiccup_meter() is not None

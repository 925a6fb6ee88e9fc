"""Progress periods: merged over shards by the xdist controller, printed once each, never lost."""

from __future__ import annotations

import time

from pytest_memaslap.output.progress import GRACE_POLLS, Period, ProgressPoller, stat_freq
from pytest_memaslap.stats.histogram import bucket_index
from pytest_memaslap.stats.results import Second


def _period(done: int, ops: int, shards: int = 2) -> Period:
    return Period("t::a", done, 10.0, 1, Second.of(ops, 0, {bucket_index(100_000): ops}), shards)


def test_a_period_is_printed_once_all_its_shards_are_in_and_merged():
    lines: list[str] = []
    poller = ProgressPoller("127.0.0.1", 1, lambda period: lines.append(period.line()))
    poller.take({"k0": _period(1, 100).to_json()})
    assert lines == []
    poller.take({"k0": _period(1, 100).to_json(), "k1": _period(1, 300).to_json()})  # k0 unchanged: not added twice
    assert lines == ["slap t::a: 1/10 s, 400 ops/s, p99 0.1 ms, errors 0 (last 1 s, 2 of 2 shards)"]


def test_a_shard_that_never_reports_delays_a_period_only_a_few_polls():
    lines: list[str] = []
    poller = ProgressPoller("127.0.0.1", 1, lambda period: lines.append(period.line()))
    poller.take({"k0": _period(5, 100).to_json(), "k1": "not json"})
    for _ in range(GRACE_POLLS):
        poller.take({})
    assert len(lines) == 1 and "(last 1 s, 1 of 2 shards)" in lines[0]


def test_default_frequency_is_off_for_short_runs():
    assert stat_freq(None, 5.0) == 0 and stat_freq(None, 10.0) == 5 and stat_freq(0, 60.0) == 0


def test_a_publisher_stores_periods_from_its_own_thread_which_ends_when_idle(own_server):
    """The load's event loop only queues a period; a thread stores it on the server, and does not linger."""
    from pytest_memaslap.output.progress import PUBLISHER_IDLE_S, ProgressPublisher

    publisher = ProgressPublisher(own_server.host, own_server.port, "slap_test_progress_gw0")
    publisher(_period(5, 100))
    publisher(_period(10, 300))
    publisher.flush()
    stored = Period.from_json(own_server.client().get("slap_test_progress_gw0"))
    assert (stored.done, stored.ops, stored.line()) == (10, 300, _period(10, 300).line())
    deadline = time.monotonic() + 10 * PUBLISHER_IDLE_S
    while publisher._thread is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert publisher._thread is None


def test_a_publisher_that_cannot_reach_the_server_gives_up_quietly_and_in_bounded_time():
    from pytest_memaslap.output.progress import ProgressPublisher

    publisher = ProgressPublisher("127.0.0.1", 1, "slap_test_progress_gw1")  # (nothing listens on port 1)
    started = time.monotonic()
    publisher(_period(5, 100))
    assert time.monotonic() - started < 0.5  # (the caller only queues)
    publisher.flush()
    assert time.monotonic() - started < 5


def test_a_long_preload_shows_how_far_it_is_every_few_seconds():
    """A preload line says how many of its sets are answered, as a share, and how fast they go."""
    from pytest_memaslap.output.progress import PreloadPrinter

    lines: list[str] = []
    printer = PreloadPrinter(lambda period: lines.append(period.line()), "t::a preload", every_s=2)
    for second, answered in enumerate([1_000, 2_500, 4_000, 6_000], start=1):
        printer(second, answered, 10_000, 0)
    assert lines == [
        "slap t::a preload: 2 s, 2,500 of 10,000 sets (25 %), 1,250 sets/s, errors 0 (last 2 s)",
        "slap t::a preload: 4 s, 6,000 of 10,000 sets (60 %), 1,750 sets/s, errors 0 (last 2 s)",
    ]


def test_a_preload_period_travels_as_json_and_merges_over_shards():
    period = Period("t::a preload", 5, None, 5, Second(500, 1), 2, progress=(500, 2_000))
    other = Period.from_json(period.to_json())
    assert other.progress == (500, 2_000) and other.errors == 1
    other.merge(Period("t::a preload", 5, None, 5, Second(700, 0), 2, progress=(700, 2_000)))
    assert other.line() == (
        "slap t::a preload: 5 s, 1,200 of 4,000 sets (30 %), 240 sets/s, errors 1 (last 5 s, 2 of 2 shards)"
    )


def test_the_engine_reports_a_slow_preload_each_second(own_server):
    """Behind a relay that holds every request 2 ms, 12,000 sets take over a second: each second is reported,
    with the sets answered so far (growing) out of all the preload will send."""
    import subprocess
    import sys
    from pathlib import Path

    from pytest_memaslap import Target, Workload, run_shard

    relay = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("delay_relay.py")), str(own_server.port), "2000"],
        stdout=subprocess.PIPE,
        text=True,
    )
    seen: list[tuple[int, int, int, int]] = []
    try:
        assert relay.stdout is not None
        port = int(relay.stdout.readline())
        workload = Workload.from_args({"keys": 12_000, "connections": 1, "duration": "0.1s", "value_size": 10})
        result = run_shard(workload, Target("127.0.0.1", port), "prel:", on_preload=lambda *a: seen.append(a))
    finally:
        relay.terminate()
        relay.communicate(timeout=10)
    assert result.phases["preload"].ops == 12_000
    assert seen, "no preload second was reported"
    assert [s[0] for s in seen] == list(range(1, len(seen) + 1))
    assert all(planned == 12_000 and errors == 0 for _, _, planned, errors in seen)
    answered = [s[1] for s in seen]
    assert answered == sorted(answered) and 0 < answered[0] < 12_000


def test_the_plugin_prints_a_long_preloads_progress(pytester, own_server):
    """As a user sees it: with progress every second, a slow preload prints where it is, past output capture."""
    import subprocess
    import sys
    from pathlib import Path

    relay = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("delay_relay.py")), str(own_server.port), "2000"],
        stdout=subprocess.PIPE,
        text=True,
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.slap(keys=12_000, connections=1, duration="0.1s", value_size=10)
        def test_slow_preload(slap):
            slap()
        """
    )
    try:
        assert relay.stdout is not None
        port = int(relay.stdout.readline())
        result = pytester.runpytest("-p", "no:cacheprovider", f"--memcached=127.0.0.1:{port}", "--slap-stat-freq=1")
    finally:
        relay.terminate()
        relay.communicate(timeout=10)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["slap *test_slow_preload preload: 1 s, * of 12,000 sets (*%), * sets/s, errors 0*"])

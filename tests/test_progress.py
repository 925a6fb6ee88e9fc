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

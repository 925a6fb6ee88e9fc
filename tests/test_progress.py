"""Progress periods: merged over shards by the xdist controller, printed once each, never lost."""

from __future__ import annotations

from pytest_memaslap.output.progress import GRACE_POLLS, Period, ProgressPoller, stat_freq
from pytest_memaslap.stats.histogram import Histogram


def _period(done: int, ops: int, shards: int = 2) -> Period:
    latency = Histogram()
    latency.record(100_000, ops)
    return Period("t::a", done, 10.0, 1, ops, 0, latency, shards)


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

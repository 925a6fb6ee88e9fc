"""The shard report that crosses xdist: exact round trip, compact timeline, refused when foreign, one verdict."""

from __future__ import annotations

import json
import random

import pytest

from pytest_memaslap.model.thresholds import parse_all
from pytest_memaslap.model.workload import Workload
from pytest_memaslap.plugin.aggregate import Aggregator
from pytest_memaslap.plugin.messages import WIRE_VERSION, ShardReport, WireError
from pytest_memaslap.stats import verdicts
from pytest_memaslap.stats.histogram import Histogram, bucket_index
from pytest_memaslap.stats.results import PERIODIC_WORK, CommandStats, PhaseStats, Second, ShardResult

pytest_plugins = ["pytester"]


def _busy_result(seconds: int, per_second: int, seed: int = 1) -> ShardResult:
    """A shard's result shaped like a real run: lognormal latencies (median ~100 µs, a long tail)."""
    rng = random.Random(seed)
    result = ShardResult()
    phase = result.measured
    for _ in range(seconds):
        latency: dict[int, int] = {}
        for _ in range(per_second):
            index = bucket_index(int(rng.lognormvariate(11.5, 0.6)))
            latency[index] = latency.get(index, 0) + 1
        phase.timeline.append(Second.of(per_second, rng.randrange(3), latency))
    for name, share in (("get", 0.9), ("set", 0.1)):
        stats = CommandStats(ops=int(seconds * per_second * share), hits=7, misses=2, errors=4, bytes_sent=10**6)
        stats.abandoned = {"connection_lost": 2, "timeout": 1}
        stats.latency = Histogram()
        for second in phase.timeline:
            for index, count in second.latency.items():
                stats.latency.counts[index] += int(count * share)
        phase.commands[name] = stats
    phase.elapsed_s = float(seconds)
    result.started_at = 1_700_000_000.25
    result.reconnects, result.reconnect_gap_s, result.send_lag_max_s = 2, 0.75, 0.002
    result.cpu_pct = 87.5
    for _ in range(seconds * 100):
        result.loop_lag.record(int(rng.lognormvariate(10, 1)))
        result.send_lag.record(int(rng.lognormvariate(9, 1)))
    result.implementation, result.event_loop = "compiled", "uvloop"
    for name, base in zip(PERIODIC_WORK, (10, 8, 9), strict=True):
        for _ in range(seconds * 50):
            result.periodic[name].record(int(rng.lognormvariate(base, 1)))
    for _ in range(seconds * 1000):
        result.hiccups.record(int(rng.lognormvariate(10, 0.5)))
    result.capacity = {"slo": ["p99 < 1ms"], "ops_per_sec": 2000.0, "stopped_by": "precision", "steps": []}
    return result


def _report(result: ShardResult, index: int = 0, count: int = 1, exprs: tuple[str, ...] = ()) -> ShardReport:
    workload = Workload.from_args({"duration": "5s", "connections": 4})
    thresholds = parse_all(exprs, workload.measured_commands())
    return ShardReport("t.py::test_it", 1, index, count, workload, thresholds, (result,), "1.6.18", True)


def _same(a: ShardResult, b: ShardResult) -> None:
    assert a.phases.keys() == b.phases.keys()
    for name, phase in a.phases.items():
        other = b.phases[name]
        assert phase.elapsed_s == other.elapsed_s
        assert phase.commands.keys() == other.commands.keys()
        for cmd, stats in phase.commands.items():
            assert stats.latency.counts == other.commands[cmd].latency.counts
            assert stats.abandoned == other.commands[cmd].abandoned
            assert (stats.ops, stats.hits, stats.misses, stats.errors, stats.bytes_sent, stats.bytes_received) == (
                other.commands[cmd].ops,
                other.commands[cmd].hits,
                other.commands[cmd].misses,
                other.commands[cmd].errors,
                other.commands[cmd].bytes_sent,
                other.commands[cmd].bytes_received,
            )
        assert [(s.ops, s.errors, s.latency) for s in phase.timeline] == [
            (s.ops, s.errors, s.latency) for s in other.timeline
        ]
    assert a.loop_lag.counts == b.loop_lag.counts and a.send_lag.counts == b.send_lag.counts
    assert (a.shards, a.started_at, a.reconnects, a.reconnect_gap_s, a.send_lag_max_s, a.cpu_pct, a.verify) == (
        b.shards,
        b.started_at,
        b.reconnects,
        b.reconnect_gap_s,
        b.send_lag_max_s,
        b.cpu_pct,
        b.verify,
    )
    assert (a.implementation, a.event_loop, a.capacity) == (b.implementation, b.event_loop, b.capacity)
    assert a.hiccups.counts == b.hiccups.counts
    assert {n: (x.durations.counts, x.max_ns) for n, x in a.periodic.items()} == {
        n: (x.durations.counts, x.max_ns) for n, x in b.periodic.items()
    }


def test_a_report_survives_the_wire_bucket_for_bucket():
    report = _report(_busy_result(4, 3000), 1, 3, ("get.p99.9 < 5ms", "ops_per_sec >= 10k"))
    wire = json.loads(json.dumps(report.to_wire()))  # JSON-safe: what reaches the controller
    again = ShardReport.from_wire(wire)
    assert (again.nodeid, again.call, again.shard_index, again.shard_count) == ("t.py::test_it", 1, 1, 3)
    assert again.workload == report.workload
    assert [t.expr for t in again.thresholds] == ["get.p99.9 < 5ms", "ops_per_sec >= 10k"]
    assert (again.memcached_version, again.enforced, again.interrupted, again.error) == ("1.6.18", True, False, None)
    _same(again.rounds[0], report.rounds[0])


def test_an_empty_result_survives_the_wire():
    again = ShardReport.from_wire(_report(ShardResult()).to_wire())
    _same(again.rounds[0], ShardResult())


def _dict_timeline_bytes(result: ShardResult) -> int:
    """The size of the timeline as the earlier release sent it: a JSON object of buckets per second."""
    seconds = [
        {"ops": s.ops, "errors": s.errors, "latency": {str(k): v for k, v in s.latency.items()}}
        for s in result.measured.timeline
    ]
    return len(json.dumps(seconds))


def test_the_timeline_travels_at_least_five_times_smaller_than_json_buckets():
    result = _busy_result(30, 20_000)
    timeline_only = ShardResult()
    timeline_only.measured.timeline = result.measured.timeline
    timeline_only.phases = {"measured": PhaseStats(timeline=result.measured.timeline)}
    compact = len(json.dumps(_report(timeline_only).to_wire()))
    before = _dict_timeline_bytes(result)
    assert before / compact >= 5, (before, compact)


def test_a_report_of_another_wire_version_is_refused_naming_both():
    wire = _report(ShardResult()).to_wire()
    wire["version"] = WIRE_VERSION + 1
    with pytest.raises(WireError, match=rf"wire version {WIRE_VERSION + 1} .* reads version {WIRE_VERSION}: install"):
        ShardReport.from_wire(wire)
    with pytest.raises(WireError, match="wire version None"):
        ShardReport.from_wire({"key": "x"})


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("shard", [0], "malformed shard report"),
        ("histograms", "!!!", "malformed shard report"),
        ("thresholds", ["p99 <"], "malformed shard report"),
    ],
)
def test_a_malformed_report_is_one_clear_error(field, value, message):
    wire = _report(_busy_result(1, 100)).to_wire()
    if field == "histograms":
        wire["rounds"][0]["histograms"] = value
    else:
        wire[field] = value
    with pytest.raises(WireError, match=message):
        ShardReport.from_wire(wire)


def test_shards_are_judged_once_on_their_merge():
    aggregator = Aggregator()
    fast, slow = _busy_result(3, 5000, seed=1), _busy_result(3, 5000, seed=2)
    exprs = ("errors <= 100",)
    assert aggregator.add(_report(fast, 0, 2, exprs)) is None  # the call waits for its other shard
    assert aggregator.missing() == [("t.py::test_it", [1], 2)]
    outcome = aggregator.add(_report(slow, 1, 2, exprs))
    assert outcome is not None and aggregator.missing() == []
    errors = sum(c.errors for c in fast.measured.commands.values()) * 2
    assert outcome.result.shards == 2 and outcome.result.errors == errors
    (verdict,) = outcome.verdicts
    assert verdict.measured == errors and verdict.passed
    assert [line.index for line in outcome.shards] == [0, 1]


def test_one_verdict_per_call_in_one_process(pytester, monkeypatch):
    """The threshold is evaluated once; the test, the summary, the JSON and JUnit all show that one verdict."""
    calls: list[str] = []
    evaluate = verdicts.judge_threshold

    def counted(threshold, result):
        calls.append(threshold.expr)
        return evaluate(threshold, result)

    monkeypatch.setattr(verdicts, "judge_threshold", counted)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.slap(ops=2000, connections=2, keys=100)
        @pytest.mark.slap_thresholds("ops_per_sec >= 1G", "errors == 0")
        def test_it(slap):
            slap()
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--slap-json=r.json", "--junitxml=j.xml")
    result.assert_outcomes(failed=1)
    assert calls == ["ops_per_sec >= 1G", "errors == 0"]
    result.stdout.fnmatch_lines(["*slap thresholds failed: 1 of 2*", "*ops_per_sec >= 1G*FAIL*", "*FAIL 1/2*"])
    (test,) = json.loads((pytester.path / "r.json").read_text())["tests"].values()
    assert [v["passed"] for v in test["thresholds"]] == [False, True]
    assert test["thresholds"][0]["measured"] == pytest.approx(test["ops_per_sec"], abs=0.05)
    junit = (pytester.path / "j.xml").read_text()
    assert 'name="slap.ops_per_sec"' in junit and '<property name="slap.thresholds" value="failed: ops_per_sec' in junit


def test_a_single_process_never_serialises_a_report(pytester, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a single process serialised a shard report")

    monkeypatch.setattr(ShardReport, "to_wire", refuse)
    monkeypatch.setattr(ShardReport, "from_wire", refuse)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.slap(ops=500, connections=2, keys=100)
        @pytest.mark.slap_thresholds("errors == 0")
        def test_it(slap):
            slap()
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*1/1 pass*"])

"""Trace replay: the formats, the schedule, the split over shards, and replays against a real memcached."""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import tracemalloc
from collections import Counter
from pathlib import Path

import pytest

from pytest_memaslap import Target, Workload, run_shard
from pytest_memaslap.engine.hot.replay import ReplayFeed, TraceQueue
from pytest_memaslap.model import trace as traces
from pytest_memaslap.model.shard_plan import ShardPlan
from pytest_memaslap.model.workload import WorkloadError
from pytest_memaslap.protocol.codecs import CODECS

ROOT = Path(__file__).resolve().parent.parent
MAKER = ROOT / "example_suites" / "traces" / "make_traces.py"
MEMASLAP_PY = [sys.executable, "-m", "pytest_memaslap.cli.memaslap"]


def _maker():
    spec = importlib.util.spec_from_file_location("make_traces", MAKER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> dict[str, Path]:
    """The example suite's traces, written afresh by the script that makes them (both formats)."""
    folder = tmp_path_factory.mktemp("traces")
    maker = _maker()
    return {
        "twitter": maker.write(folder / "t.csv.zst", maker.twitter_lines(), compressed=True),
        "kvreplay": maker.write(folder / "k.csv", maker.kvreplay_lines(), compressed=False),
        "twitter_plain": maker.write(folder / "t.csv", maker.twitter_lines(), compressed=False),
    }


def _write(tmp_path: Path, text: str, name: str = "trace.csv") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _feed(workload: Workload, plan: ShardPlan | None = None, connections: int = 4) -> ReplayFeed:
    plan = plan or ShardPlan()
    queues = [TraceQueue() for _ in range(connections)]
    return ReplayFeed(workload, plan, CODECS["ascii"], "rp:", queues, [[] for _ in range(connections)])


def _scheduled(feed: ReplayFeed) -> list[tuple[float, int, tuple]]:
    return [item for item in feed.schedule() if item is not None]


# -- formats ---------------------------------------------------------------------------------------------------


def test_the_format_is_found_from_the_first_line_and_an_unknown_one_names_both():
    assert traces.detect_format("0,q:q:1:8WTfjZU,37,1,433,get,0") == traces.TWITTER
    assert traces.detect_format("key,op,size,op_count,key_size,ttl") == traces.KVREPLAY
    assert traces.detect_format("abc,GET,100,1,3,0") == traces.KVREPLAY
    with pytest.raises(traces.TraceError, match="neither Twitter's cache-trace format .* nor CacheLib's KVReplay"):
        traces.detect_format("hello world", "x.csv")


def test_lines_parse_into_records_or_the_reason_they_cannot_be_replayed():
    record = traces.parse("12,k:1,20,300,7,set,3600\n", traces.TWITTER)
    assert record == (12.0, "k:1", 20, 300, "set", 3600, 1) and record.op == "set"
    assert traces.parse("12,a,b,20,300,7,get,0\n", traces.TWITTER)[1] == "a,b"  # (a key with a comma keeps it)
    assert traces.parse("12,k,20,x,7,get,0", traces.TWITTER) == traces.MALFORMED
    assert traces.parse("12,k,20", traces.TWITTER) == traces.MALFORMED
    assert traces.parse("12,k,20,3,7,touch,0", traces.TWITTER) == "operation 'touch' has no memcached command"
    assert traces.parse("abc,GET,100,3,,0\n", traces.KVREPLAY) == (None, "abc", 3, 100, "get", 0, 3)
    assert traces.parse("abc,GET,100,0,3,0", traces.KVREPLAY) == traces.MALFORMED  # (op_count 0)
    assert traces.parse("abc,GET,-1,1,3,0", traces.KVREPLAY) == traces.MALFORMED


def test_compression_is_found_from_the_content_not_the_name(samples, tmp_path):
    disguised = tmp_path / "named-plain.csv"
    disguised.write_bytes(samples["twitter"].read_bytes())  # zstd bytes under a plain name
    found = traces.inspect(disguised)
    assert found.compressed and found.format == traces.TWITTER
    plain = tmp_path / "named.zst"
    plain.write_bytes(samples["twitter_plain"].read_bytes())
    assert not traces.inspect(plain).compressed
    assert list(traces.lines(found)) == list(traces.lines(traces.inspect(plain)))


def test_a_compressed_trace_without_zstandard_says_what_to_install(samples, monkeypatch):
    monkeypatch.setitem(sys.modules, "zstandard", None)
    with pytest.raises(traces.TraceError, match=r"zstd-compressed.*pip install 'pytest-memaslap\[traces\]'"):
        traces.inspect(samples["twitter"])


def test_a_missing_trace_is_one_error_naming_it(tmp_path):
    with pytest.raises(WorkloadError, match=r"trace='.*nope.csv': cannot read it"):
        Workload.from_args({"trace": str(tmp_path / "nope.csv")})


def test_replay_arguments_are_checked_together(samples):
    with pytest.raises(WorkloadError, match="KVReplay trace has no clock; give it a rate"):
        Workload.from_args({"trace": str(samples["kvreplay"])})
    with pytest.raises(WorkloadError, match="speed, loop: apply to a trace replay"):
        Workload.from_args({"speed": 2, "loop": True})
    with pytest.raises(WorkloadError, match="speed= scales the trace's own clock and rate= replaces it"):
        Workload.from_args({"trace": str(samples["twitter"]), "rate": 100, "speed": 2})
    with pytest.raises(WorkloadError, match="so stages, verify cannot apply"):
        Workload.from_args({"trace": str(samples["twitter"]), "stages": [("1s", 10)], "verify": 0.1})
    with pytest.raises(WorkloadError, match="a looped trace never ends"):
        Workload.from_args({"trace": str(samples["twitter"]), "loop": True, "duration": None})
    with pytest.raises(WorkloadError, match="speed=0"):
        Workload.from_args({"trace": str(samples["twitter"]), "speed": 0})
    workload = Workload.from_args({"trace": str(samples["twitter"]), "duration": None})  # (ends with the trace)
    assert not workload.preloads and workload.measured_commands() == traces.REPLAYED_OPS


# -- the schedule (no server) ------------------------------------------------------------------------------------


def test_recorded_time_is_spread_evenly_within_each_second_and_scaled_by_speed(tmp_path):
    path = _write(tmp_path, "100,a,10,0,1,get,0\n100,b,10,0,1,get,0\n101,c,10,0,1,get,0\n103,d,10,0,1,get,0\n")
    workload = Workload.from_args({"trace": path, "duration": None, "arrivals": "uniform", "speed": 2})
    times = [round(t, 6) for t, _, _ in _scheduled(_feed(workload))]
    assert times == [0.125, 0.375, 0.75, 1.75]  # (0.25, 0.75 | 1.5 | 3.5) halved


def test_poisson_spreading_keeps_each_request_in_its_second_in_order(tmp_path):
    lines = "".join(f"{10 + s},k{i},10,0,1,get,0\n" for s in range(3) for i in range(50))
    workload = Workload.from_args({"trace": _write(tmp_path, lines), "duration": None})
    times = [t for t, _, _ in _scheduled(_feed(workload))]
    assert times == sorted(times) and len(times) == 150
    assert all(s <= t < s + 1 for s, chunk in enumerate((times[:50], times[50:100], times[100:])) for t in chunk)


def test_a_loop_starts_again_one_second_after_the_last_and_ops_bound_it(tmp_path):
    path = _write(tmp_path, "5,a,10,0,1,get,0\n6,b,10,0,1,get,0\n")
    workload = Workload.from_args({"trace": path, "loop": True, "ops": 5, "arrivals": "uniform", "duration": None})
    feed = _feed(workload)
    assert [t for t, _, _ in _scheduled(feed)] == [0.5, 1.5, 2.5, 3.5, 4.5]
    assert feed.passes == 3 and feed.requests == 5


def test_a_rate_replaces_the_clock_with_steady_gaps(samples):
    workload = Workload.from_args({"trace": str(samples["kvreplay"]), "rate": 1000, "arrivals": "uniform"})
    times = [t for t, _, _ in _scheduled(_feed(workload))][:5]
    assert times == pytest.approx([0.001, 0.002, 0.003, 0.004, 0.005])


def test_keys_are_deterministic_sized_and_each_on_one_connection_of_one_shard(samples):
    workload = Workload.from_args({"trace": str(samples["twitter"]), "duration": None})
    shards = [_scheduled(_feed(workload, ShardPlan(i, 2))) for i in range(2)]
    seen: dict[bytes, tuple[int, int]] = {}
    for shard, items in enumerate(shards):
        for _, connection, (_, request, _) in items:
            key = request.split(b" ")[1].rstrip(b"\r\n")
            assert key.startswith(b"rp:") and seen.setdefault(key, (shard, connection)) == (shard, connection)
    assert sum(map(len, shards)) == len(_scheduled(_feed(workload)))  # (every request on exactly one shard)
    assert all(shards)  # (both shards have work)
    again = _scheduled(_feed(workload, ShardPlan(0, 2)))
    assert [r for _, _, (_, r, _) in again] == [r for _, _, (_, r, _) in shards[0]]  # the same run twice


def test_a_key_has_its_recorded_size_unless_the_prefix_and_hash_need_more(tmp_path):
    path = _write(tmp_path, "1,a,40,0,1,get,0\n1,b,5,0,1,get,0\n")
    items = _scheduled(_feed(Workload.from_args({"trace": path, "duration": None, "arrivals": "uniform"})))
    sizes = [len(request) - len(b"get \r\n") for _, _, (_, request, _) in items]
    assert sizes == [40, len("rp:") + 16]


def test_amplify_makes_distinct_copies_of_every_key(tmp_path):
    path = _write(tmp_path, "1,a,10,0,1,get,0\n1,b,10,0,1,get,0\n")
    workload = Workload.from_args({"trace": path, "amplify": 3, "duration": None})
    keys = [request for _, _, (_, request, _) in _scheduled(_feed(workload))]
    assert len(keys) == 6 and len(set(keys)) == 6


def test_lines_that_cannot_be_replayed_are_counted_by_reason_once_over_shards(tmp_path):
    big = 2 << 20
    text = f"1,a,10,0,1,get,0\nbroken\n1,b,10,0,1,touch,0\n1,c,300,0,1,get,0\n1,d,10,{big},1,set,0\n"
    workload = Workload.from_args({"trace": _write(tmp_path, text), "duration": None})
    feeds = [_feed(workload, ShardPlan(i, 2)) for i in range(2)]
    for feed in feeds:
        _scheduled(feed)
    total: Counter[str] = Counter()
    for feed in feeds:
        total.update(feed.skipped)
    assert total == {
        "malformed line": 1,
        "operation 'touch' has no memcached command": 1,
        "key longer than 250 bytes": 1,
        "value larger than memcached's default item size (1 MiB)": 1,
    }
    assert sum(feed.requests for feed in feeds) == 1 and sum(feed.summary()["lines"] for feed in feeds) == 5


def test_the_reader_streams_a_long_trace_in_bounded_memory(tmp_path):
    """200,000 lines (about 6 MB of text) over 1,000 keys: the schedule is read through, never held."""
    path = tmp_path / "long.csv"
    with path.open("w") as out:
        for i in range(200_000):
            out.write(f"{i // 5000},key{i % 1000},20,100,1,{'set' if i % 10 == 0 else 'get'},0\n")
    workload = Workload.from_args({"trace": str(path), "duration": None})
    feed = _feed(workload)
    tracemalloc.start()
    try:
        count = sum(1 for item in feed.schedule() if item is not None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 200_000
    assert peak < 4_000_000, f"peak {peak:,} bytes"


# -- against a real memcached -------------------------------------------------------------------------------------


def _stats(server) -> dict[str, int]:
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(b"stats\r\n")
        data = b""
        while not data.endswith(b"END\r\n"):
            data += sock.recv(65536)
    return {
        name: int(value)
        for _, name, value in (line.split(" ", 2) for line in data.decode().splitlines() if line.startswith("STAT "))
        if value.isdigit()
    }


def test_a_replay_sends_exactly_the_traces_requests_as_the_server_counts_them(samples, own_server, hot_path):
    workload = Workload.from_args({"trace": str(samples["twitter"]), "speed": 10, "duration": None, "connections": 4})
    before = _stats(own_server)
    result = run_shard(workload, Target(own_server.host, own_server.port), f"rpx{hot_path}:")
    after = _stats(own_server)
    commands = result.measured.commands
    ops = {name: commands[name].ops if name in commands else 0 for name in traces.REPLAYED_OPS}
    expected = Counter(line.split(",")[5] for line in _maker().twitter_lines())
    assert result.replay["requests"] == sum(expected.values()) == 3_050
    assert ops["get"] == expected["get"] and ops["set"] == expected["set"] and ops["delete"] == expected["delete"]
    assert ops["incr"] == expected["incr"] and ops["gets"] == expected["cas"]  # (a cas is a gets first...)
    assert ops["cas"] == ops["gets"] - commands["gets"].misses > 0  # (... then the cas, when the gets found it)
    assert sum(c.errors for c in commands.values()) == 0
    delta = {name: after[name] - before[name] for name in ("cmd_get", "cmd_set", "cmd_touch")}
    assert delta["cmd_get"] == ops["get"] + ops["gets"]
    assert delta["cmd_set"] == ops["set"] + ops["cas"]  # (memcached counts a cas as a set)
    assert after["decr_misses"] + after["decr_hits"] == 0 and after["incr_hits"] - before["incr_hits"] == ops["incr"]


def test_cleanup_deletes_every_key_the_replay_wrote(samples, own_server):
    workload = Workload.from_args({"trace": str(samples["twitter"]), "speed": 10, "duration": None})
    run_shard(workload, Target(own_server.host, own_server.port), "rpc:", cleanup=True)
    assert _stats(own_server)["curr_items"] == 0


def test_a_replay_in_a_test_reports_what_it_replayed_with_and_without_shards(pytester, samples):
    trace = samples["twitter"]
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.slap(trace={str(trace)!r}, speed=10, duration=None, connections=4)
        @pytest.mark.slap_thresholds("errors == 0")
        def test_replay(slap):
            result = slap()
            assert result.ops > 0
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--slap-json=r.json")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["note: *test_replay: replayed *t.csv.zst (twitter, zstd): 3,050 requests from 3,050 lines; all replayed"]
    )
    (test,) = json.loads((pytester.path / "r.json").read_text())["tests"].values()
    assert test["replay"]["requests"] == 3_050 and test["replay"]["format"] == "twitter"
    assert test["ops"] == 3_050 + test["commands"]["cas"]["ops"]  # (a cas is a gets, then the cas)

    sharded = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-n", "2", "--slap-shards=2", "--slap-json=s.json"
    )
    sharded.assert_outcomes(passed=2)
    (test,) = json.loads((pytester.path / "s.json").read_text())["tests"].values()
    assert test["shards"] == 2 and test["replay"]["requests"] == 3_050 and test["replay"]["lines"] == 3_050


def test_a_relative_trace_path_is_the_test_files_and_bad_arguments_fail_collection(pytester, samples):
    (pytester.path / "traces").mkdir()
    (pytester.path / "traces" / "k.csv").write_bytes(samples["kvreplay"].read_bytes())
    pytester.makepyfile(
        test_kv="""
        import pytest

        @pytest.mark.slap(trace="traces/k.csv", rate=20_000, duration="0.2s", connections=2)
        def test_kv(slap):
            assert slap().ops > 0
        """,
        test_no_rate="""
        import pytest

        @pytest.mark.slap(trace="traces/k.csv")
        def test_no_rate(slap):
            slap()
        """,
    )
    pytester.runpytest("-p", "no:cacheprovider", "test_kv.py").assert_outcomes(passed=1)
    refused = pytester.runpytest("-p", "no:cacheprovider", "test_no_rate.py")
    refused.assert_outcomes(errors=1)
    refused.stdout.fnmatch_lines(["*test_no_rate: trace=*k.csv': a KVReplay trace has no clock; give it a rate*"])


def test_memaslap_py_replays_a_trace(samples, own_server):
    command = [*MEMASLAP_PY, "-s", own_server.address, "--trace", str(samples["twitter"]), "--speed", "10", "-c", "4"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert f"replayed: 3050 requests from 3050 lines of {samples['twitter']}" in done.stdout
    refused = subprocess.run(
        [*MEMASLAP_PY, "-s", own_server.address, "--loop"], capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 2 and "--speed, --loop, --amplify: apply to a trace replay" in refused.stderr

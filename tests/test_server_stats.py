"""The server's side of every run: its stats sampled beside the load, judged and reported, checked against ours."""

from __future__ import annotations

import json

import pytest

from pytest_memaslap.memcached.sampler import StatsSampler
from pytest_memaslap.memcached.server import ServerConfig, start_server
from pytest_memaslap.stats.proxy import forwarded, proxy_section, reading
from pytest_memaslap.stats.server import accounting, metric, server_section


def _sample(t: float, gets: float, sets: float, user: float, system: float, **more: float) -> tuple:
    values = {"cmd_get": gets, "cmd_set": sets, "rusage_user": user, "rusage_system": system, "get_hits": gets}
    values.update(more)
    return t, values


def test_the_measured_phase_is_read_between_its_samples_and_the_call_between_the_first_and_last():
    samples = [
        _sample(100.0, 0, 0, 0.0, 0.0, curr_items=0),
        _sample(101.0, 1000, 100, 0.010, 0.020, curr_items=100),
        _sample(102.0, 3000, 300, 0.030, 0.060, curr_items=300, evictions=5),
        _sample(103.0, 3000, 350, 0.031, 0.061, curr_items=350, evictions=5),
    ]
    samples[0][1]["evictions"] = samples[1][1]["evictions"] = 0
    section = server_section([("h:1", {"maxbytes": 1}, samples, None)], (101.5, 102.0))
    server = section["servers"][0]
    # half of the second 101-102: 1000 gets and 100 sets of its 2000 and 200, 10 + 20 ms of its 20 + 40 ms
    assert server["ops"] == 1100 and server["cpu_user_us"] == 10_000 and server["cpu_system_us"] == 20_000
    assert server["cpu_us_per_op"] == pytest.approx(30_000 / 1100, abs=1e-3) and server["ops_per_sec"] == 2200
    assert server["hit_ratio"] == 1.0 and server["evictions"] == 2 and server["curr_items"] == 300
    assert [point["ops"] for point in server["timeline"]] == [1100, 2200, 50]
    assert server["requests_in_call"] == 3350
    assert metric(section, "cpu_us_per_op") == server["cpu_us_per_op"] and metric(None, "evictions") != metric(
        None, "evictions"
    )
    assert accounting(section, 3350) == {"checked": True, "ours": 3350, "servers": 3350, "matches": True}
    assert accounting(section, 3349)["matches"] is False
    assert accounting(section, 1, "a multi-get counts each key")["checked"] is False


def _proxy_document(requests: tuple[int, int], client_err: int = 0, ejects: int = 0, eof: int = 0) -> dict:
    """A twemproxy stats document as it writes one: a pool with two backends, one named by the configuration."""
    backend = {"server_eof": 0, "server_err": 0, "server_timedout": 0, "server_connections": 1, "in_queue": 2,
               "in_queue_bytes": 9, "out_queue": 1, "out_queue_bytes": 9, "request_bytes": 0,
               "response_bytes": 0}  # fmt: skip
    return {
        "service": "nutcracker", "version": "0.5.0", "timestamp": 1, "curr_connections": 3,
        "alpha": {"client_eof": eof, "client_err": client_err, "client_connections": 2, "server_ejects": ejects,
                  "forward_error": 0, "fragments": 0,
                  "10.0.0.1:11211": {**backend, "requests": requests[0], "responses": requests[0]},
                  "beta": {**backend, "requests": requests[1], "responses": requests[1], "server_timedout": ejects}},
    }  # fmt: skip


def test_a_proxys_documents_give_its_totals_per_backend_and_between_readings():
    readings = [
        (10.0, reading(_proxy_document((5, 5)))),
        (11.0, reading(_proxy_document((1005, 505), eof=3))),
        (12.0, reading(_proxy_document((2005, 1005), client_err=2, ejects=1, eof=9))),
    ]
    section = proxy_section("p:22222", readings, (10.0, 12.0), True, {"service": "nutcracker"}, None)
    assert section["total"] == {
        "requests": 3000, "responses": 3000, "errors": 3, "ejects": 1, "fragments": 0,
        "errors_by_kind": {"client_err": 2, "forward_error": 0, "server_err": 0, "server_timedout": 1, "server_eof": 0},
    }  # fmt: skip
    assert section["backends"] == [
        {"pool": "alpha", "server": "10.0.0.1:11211", "requests": 2000, "responses": 2000, "errors": 0},
        {"pool": "alpha", "server": "beta", "requests": 1000, "responses": 1000, "errors": 1},
    ]
    assert [(p["t_s"], p["requests_per_sec"], p["errors"], p["in_queue"]) for p in section["timeline"]] == [
        (1.0, 1500.0, 0, 4),
        (2.0, 1500.0, 3, 4),
    ]
    assert section["settled"] and "note" not in section
    # a client's end of connection (a poke) moves no forwarded counter; a request does
    assert forwarded(readings[1][1]) == forwarded(reading(_proxy_document((1005, 505), eof=99)))
    assert forwarded(readings[1][1]) != forwarded(readings[2][1])
    unsettled = proxy_section("p:22222", readings, (10.0, 12.0), False, {}, None)
    assert "may miss the call's last moments" in unsettled["note"]
    assert proxy_section("p:22222", readings[:1], (10.0, 12.0), True, {}, "stats port: refused")["total"] is None
    # the server section adds its errors and ejections to the total, as server.proxy_* metrics
    server = server_section([], (10.0, 12.0), section)
    assert metric(server, "proxy_errors") == 3 and metric(server, "proxy_ejects") == 1


def test_several_servers_add_up_with_ratios_from_the_sums():
    a = [_sample(0.0, 0, 0, 0.0, 0.0), _sample(1.0, 100, 0, 0.001, 0.0)]
    b = [_sample(0.0, 0, 0, 0.0, 0.0), _sample(1.0, 300, 0, 0.001, 0.002)]
    total = server_section([("a:1", {}, a, None), ("b:1", {}, b, None)], (0.0, 1.0))["total"]
    assert total["ops"] == 400 and total["cpu_us_per_op"] == pytest.approx(4000 / 400)
    assert total["ops_per_sec"] == 400


def test_a_server_that_stops_answering_is_sampled_no_more(own_server):
    sampler = StatsSampler([own_server.servers[0], ("127.0.0.1", 1)], interval_s=0.05)
    sampler.start()
    servers = sampler.stop()
    assert len(servers[0].samples) >= 2 and servers[0].error is None
    assert servers[1].samples == [] and "stats" in (servers[1].error or "")


RUN = """
import pytest

@pytest.mark.slap(duration="1s", connections=4, keys=2000, value_size=100)
@pytest.mark.slap_thresholds(THRESHOLDS)
def test_srv(slap):
    slap()
"""


def _suite(pytester, thresholds: str) -> None:
    pytester.makepyfile(RUN.replace("THRESHOLDS", thresholds))


def test_the_server_section_its_thresholds_and_an_exact_account(pytester, own_server):
    _suite(pytester, '"server.evictions == 0", "server.hit_ratio > 0.99", "server.cpu_us_per_op < 1000"')
    result = pytester.runpytest(
        "-p",
        "no:cacheprovider",
        f"--memcached={own_server.address}",
        "--slap-json=r.json",
        "--slap-server-stats=column",
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*server CPU µs/op*", "*test_srv*3/3 pass*"])
    (test,) = json.loads((pytester.path / "r.json").read_text())["tests"].values()
    server = test["server"]
    assert server["accounting"] == {
        "checked": True,
        "ours": test["requests_sent"],
        "servers": test["requests_sent"],
        "matches": True,
    }
    total = server["total"]
    assert total["ops"] > 0 and total["cpu_us_per_op"] > 0 and total["evictions"] == 0 and total["hit_ratio"] == 1.0
    assert server["servers"][0]["settings"]["maxbytes"] == 64 * 1024 * 1024
    assert len(server["servers"][0]["timeline"]) >= 2


def test_a_server_threshold_fails_the_test_that_breaks_it(pytester, no_new_memcached):
    """A 2 MB server filled with 6 MB, then sets of new keys only: it evicts while measured, and
    ``server.evictions == 0`` fails the test, naming it."""
    server = start_server(ServerConfig(threads=1, memory_mb=2))
    try:
        pytester.makepyfile(
            """
            import pytest

            @pytest.mark.slap(
                duration="1s", connections=2, keys=6000, value_size=1000, commands={"set": 1.0}, overwrite=0.0
            )
            @pytest.mark.slap_thresholds("server.evictions == 0")
            def test_evicts(slap):
                slap()
            """
        )
        result = pytester.runpytest("-p", "no:cacheprovider", f"--memcached={server.address}")
    finally:
        server.stop()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*server.evictions == 0*FAIL*"])


def test_off_means_no_sampling_and_a_threshold_that_needs_it_is_refused(pytester, own_server):
    _suite(pytester, '"errors == 0"')
    result = pytester.runpytest(
        "-p", "no:cacheprovider", f"--memcached={own_server.address}", "--slap-json=r.json", "--slap-server-stats=off"
    )
    result.assert_outcomes(passed=1)
    (test,) = json.loads((pytester.path / "r.json").read_text())["tests"].values()
    assert test["server"] is None
    _suite(pytester, '"server.evictions == 0"')
    refused = pytester.runpytest(
        "-p", "no:cacheprovider", f"--memcached={own_server.address}", "--slap-server-stats=off"
    )
    refused.assert_outcomes(errors=1)
    refused.stdout.fnmatch_lines(["*server.evictions == 0*not sampled (--slap-server-stats=off)*"])
    bad = pytester.runpytest("-p", "no:cacheprovider", "--slap-server-stats=maybe")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*--slap-server-stats='maybe': expected on, off or column*"])


def test_under_shards_one_shard_samples_and_the_account_says_why_it_is_not_exact(pytester, own_server):
    _suite(pytester, '"server.evictions == 0"')
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        f"--memcached={own_server.address}",
        "-n",
        "2",
        "--slap-shards=2",
        "--slap-json=r.json",
    )
    result.assert_outcomes(passed=2)
    (test,) = json.loads((pytester.path / "r.json").read_text())["tests"].values()
    assert test["shards"] == 2 and test["server"]["total"]["ops"] > 0
    assert test["server"]["accounting"]["checked"] is False
    assert "other shards" in test["server"]["accounting"]["why_not"]


def test_a_busy_load_generator_does_not_excuse_the_servers_own_figures(monkeypatch):
    """A client-side limit makes a missed latency threshold inconclusive, never a server's counter."""
    from pytest_memaslap import Workload
    from pytest_memaslap.model.thresholds import parse_all
    from pytest_memaslap.stats.result import SlapResult
    from pytest_memaslap.stats.results import CommandStats, PhaseStats, ShardResult
    from pytest_memaslap.stats.verdicts import judge_thresholds

    raw = ShardResult()
    raw.phases["measured"] = PhaseStats({"get": CommandStats(ops=10)}, [], 1.0)
    samples = [_sample(0.0, 0, 0, 0.0, 0.0, evictions=0), _sample(1.0, 10, 0, 0.001, 0.0, evictions=7)]
    raw.server = server_section([("h:1", {}, samples, None)], (0.0, 1.0))
    result = SlapResult(Workload.from_args({"keys": 10}), raw)
    monkeypatch.setattr(SlapResult, "limited_by_load_generator", lambda self: "its CPU at 100 %")
    (verdict,) = judge_thresholds(parse_all(("server.evictions == 0",)), result)
    assert verdict.failed and not verdict.inconclusive

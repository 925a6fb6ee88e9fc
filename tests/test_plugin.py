"""The plugin as users meet it: a test file, a pytest run, the outcome, the summary, the JSON."""

from __future__ import annotations

import json

import pytest
from conftest import memcached_pids, run_subprocess

ACCOUNTING_TEST = """
import pytest

@pytest.mark.slap(duration="0.6s", warmup="0.2s", connections=6, window=3, keys=3000, key_size=(16, 40),
                  value_size=(10, 2000), commands={"get": 0.6, "set": 0.25, "delete": 0.15})
def test_accounting(slap, memcached_server):
    before = memcached_server.stats()
    result = slap()
    after = memcached_server.stats()
    moved = lambda *names: sum(after[n] - before[n] for n in names)
    phases = result.raw.phases
    per_command = lambda name: sum(p.commands[name].ops for p in phases.values() if name in p.commands)
    assert per_command("get") == moved("cmd_get")
    assert per_command("set") == moved("cmd_set")
    assert per_command("delete") == moved("delete_hits", "delete_misses")
    assert result.ops + sum(result.unmeasured_ops.values()) == result.requests_sent
    assert result.requests_sent == moved("cmd_get", "cmd_set", "delete_hits", "delete_misses")
    assert result.unmeasured_ops["preload"] == 3000
    assert result.unmeasured_ops["warmup"] > 0
    assert result.errors == 0
    assert result.get.hits + result.get.misses == result.get.ops
    assert result.get.p50 <= result.get.p99 <= result.get.max
"""


def test_ops_counted_by_the_plugin_equal_memcacheds_own_counters(pytester):
    pytester.makepyfile(ACCOUNTING_TEST)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*slap summary*", "*test_accounting*"])


def test_thresholds_pass_and_fail_with_a_table_and_exit_status(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.slap(ops=2000, connections=4, keys=1000)
        @pytest.mark.slap_thresholds("errors == 0", "ops == 2000", "hit_ratio >= 0.99")
        def test_good(slap):
            slap()

        @pytest.mark.slap(ops=2000, connections=4, keys=1000)
        @pytest.mark.slap_thresholds("errors == 0", "ops_per_sec >= 1G", "get.p99 < 1us")
        def test_bad(slap):
            slap()
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*slap thresholds failed: 2 of 3*",
            "*threshold*required*measured*verdict*",
            "*errors == 0*== 0*0*pass*",
            "*ops_per_sec >= 1G*>= 1,000,000,000 ops/s*FAIL*",
            "*get.p99 < 1us*< 1 µs*FAIL*",
        ]
    )
    result.stdout.fnmatch_lines(["*test_good*3/3 pass*", "*test_bad*FAIL 2/3*"])


def test_no_thresholds_option_reports_without_failing(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.slap(ops=500, connections=2, keys=100)
        @pytest.mark.slap_thresholds("ops_per_sec >= 1G")
        def test_bad(slap):
            slap()
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--slap-no-thresholds")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*FAIL 1/1 (not enforced)*"])


def test_thresholds_without_a_slap_call_fail_the_test(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.slap_thresholds("errors == 0")
        def test_forgot(slap):
            pass
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*declares slap_thresholds but never called slap()*"])


@pytest.mark.parametrize(
    ("mark", "message"),
    [
        ("slap(conections=4)", "unknown slap argument 'conections'; allowed: duration, ops,*"),
        ("slap(value_size=(0, 10))", "*value_size=(0, 10): sizes must satisfy 1 <= min <= max*"),
        ("slap(commands={'get': 0.7})", "*proportions must sum to 1; they sum to 0.7*"),
        ("slap(duration='soon')", "*duration='soon': expected a duration such as*"),
        ("slap_thresholds('get.p99 < 2')", "*get.p99 < 2*needs a time unit: us, ms or s*"),
        ("slap_thresholds('delete.p99 < 2ms')", "*sends no 'delete' requests*"),
        ("memcached(threds=2)", "*memcached mark: unknown argument 'threds'*"),
    ],
)
def test_bad_marks_fail_collection_naming_the_argument(pytester, mark, message):
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.{mark}
        def test_it(slap):
            slap()
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*ERROR collecting*", f"*test_it: {message}" if mark.startswith("slap(") else message])


def test_bad_option_value_is_a_usage_error(pytester):
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest("-p", "no:cacheprovider", "--slap-connections=lots")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--slap-connections='lots': expected a whole number*"])


def test_slap_duration_option_and_call_overrides(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.slap(duration="5s", connections=2, keys=200)
        def test_lengthened(slap):
            result = slap()
            assert 0.3 <= result.duration < 1.5
            again = slap(duration="0.1s", window=2)
            assert again.workload.window == 2 and again.duration < 1.0
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--slap-duration=0.3", "--slap-json=out.json")
    result.assert_outcomes(passed=1)
    doc = json.loads((pytester.path / "out.json").read_text())
    first = doc["tests"]["test_slap_duration_option_and_call_overrides.py::test_lengthened"]
    second = doc["tests"]["test_slap_duration_option_and_call_overrides.py::test_lengthened#2"]
    assert first["workload"]["duration"] == 0.3
    assert second["workload"]["duration"] == 0.1


def test_options_can_be_set_in_ini(pytester):
    pytester.makeini(
        """
        [pytest]
        slap_duration = 0.2
        slap_connections = 3
        slap_json = from_ini.json
        """
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.slap(duration=30, keys=100)
        def test_it(slap):
            assert slap().workload.connections == 3
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    doc = json.loads((pytester.path / "from_ini.json").read_text())
    assert doc["tests"]["test_options_can_be_set_in_ini.py::test_it"]["workload"]["duration"] == 0.2


def test_json_document_and_junit_properties(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.slap(ops=3000, warmup="0.1s", connections=4, keys=500,
                          commands={"get": 0.8, "set": 0.2})
        @pytest.mark.slap_thresholds("errors == 0")
        def test_it(slap):
            slap()
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--slap-json=r.json", "--junitxml=j.xml")
    result.assert_outcomes(passed=1)
    doc = json.loads((pytester.path / "r.json").read_text())
    assert doc["plugin_version"] and doc["memcached_version"]
    assert doc["engine"] == {"implementation": "compiled", "event_loop": "uvloop"}
    test = doc["tests"]["test_json_document_and_junit_properties.py::test_it"]
    for key in (
        "workload",
        "shards",
        "duration_s",
        "ops",
        "ops_per_sec",
        "errors",
        "hit_ratio",
        "unmeasured_ops",
        "commands",
        "timeline",
        "thresholds",
        "engine",
    ):
        assert key in test
    assert 0 < test["engine"]["cpu_pct"] and test["engine"]["loop_lag_us"]["max"] > 0
    periodic = test["engine"]["periodic_max_us"]  # the engine's own blocks of the loop were measured
    assert 0 < periodic["request_refill"] < 1_000_000
    # (0: the run ended before the first tick, or the watchdog's first check)
    assert 0 <= periodic["timeline_close"] < 1_000_000 and 0 <= periodic["stall_watchdog"] < 1_000_000
    assert test["engine"]["periodic_us"]["request_refill"]["count"] >= 3000 // 16
    assert test["engine"]["machine_hiccups_us"]["count"] > 0  # (the compiled meter ran beside the load)
    cost = test["engine"]["cpu_us_per_request"]  # what a request of the measured phase cost the load process
    assert cost["user"] + cost["system"] > 0 and min(cost.values()) >= 0
    assert cost["total"] == round(cost["user"] + cost["system"], 3)
    assert test["shards"] == 1 and test["ops"] == 3000
    assert test["unmeasured_ops"]["preload"] == 500
    assert test["ops"] + sum(test["unmeasured_ops"].values()) == test["requests_sent"]
    get = test["commands"]["get"]
    assert get["hits"] + get["misses"] + get["errors"] == get["ops"]
    assert set(get["latency_us"]) >= {"p50", "p90", "p99", "p999", "max", "mean"}
    assert sum(point["ops"] for point in test["timeline"]) == test["ops"]
    assert test["thresholds"] == [
        {"expr": "errors == 0", "measured": 0.0, "interval": None, "verdict": "pass", "why": None, "passed": True}
    ]
    junit = (pytester.path / "j.xml").read_text()
    assert 'name="slap.ops_per_sec"' in junit and 'name="slap.p99_us"' in junit
    assert 'name="slap.get.p99_us"' in junit and 'name="slap.set.ops"' in junit
    assert '<property name="slap.thresholds" value="passed"' in junit


def test_memcached_mark_gets_its_own_server_and_same_config_shares_one(pytester):
    pytester.makepyfile(
        """
        import pytest

        seen = {}

        @pytest.mark.memcached(threads=2)
        def test_two_threads(memcached_server):
            assert memcached_server.stats("settings")["num_threads"] == 2
            seen["two"] = memcached_server.port

        @pytest.mark.memcached(threads=2)
        def test_same_config(memcached_server):
            assert memcached_server.port == seen["two"]

        def test_default(memcached_server, memcached_client):
            assert memcached_server.port != seen["two"]
            assert memcached_server.stats("settings")["num_threads"] == 4
            memcached_client.set("k", b"v")
            assert memcached_client.get("k") == b"v"
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


def test_no_memcached_outlives_a_session_with_a_raising_test(pytester, no_new_memcached):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.memcached(threads=1)
        def test_raises(memcached_server):
            raise RuntimeError("boom")

        @pytest.mark.slap(ops=100, connections=1, keys=10)
        def test_fails(slap):
            slap()
            assert False
        """
    )
    result = run_subprocess(pytester)
    result.assert_outcomes(failed=2)


def test_missing_binary_says_how_to_install_or_point_at_a_server(pytester):
    pytester.makepyfile("def test_it(memcached_server): pass")
    result = pytester.runpytest("-p", "no:cacheprovider", "--memcached-bin=/nonexistent/memcached")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*not found: install memcached*apt-get install memcached*--memcached=HOST:PORT*"])


def test_binary_that_exits_at_startup_shows_its_output(pytester, no_new_memcached):
    pytester.makepyfile("def test_it(memcached_server): pass")
    result = pytester.runpytest("-p", "no:cacheprovider", "--memcached-args=--no-such-flag")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*memcached exited with status*", "*--- memcached output ---*", "*no-such-flag*"])


def test_external_server_is_used_and_never_flushed(pytester, memcached_server, no_new_memcached):
    client = memcached_server.client()
    client.set("precious", b"keep me")
    client.close()
    pytester.makepyfile(
        """
        import pytest
        from pytest_memaslap import ServerError

        @pytest.mark.slap(ops=2000, connections=4, keys=500, commands={"set": 0.5, "delete": 0.5})
        def test_it(slap, memcached_server):
            assert not memcached_server.owned
            slap()
            with pytest.raises(ServerError, match="refusing to flush"):
                memcached_server.flush()
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", f"--memcached={memcached_server.address}")
    result.assert_outcomes(passed=1)
    assert not memcached_pids(no_new_memcached), "the plugin started a server although --memcached was given"
    client = memcached_server.client()
    assert client.get("precious") == b"keep me"
    client.close()


def test_unreachable_external_server_fails_within_seconds(pytester):
    pytester.makepyfile("def test_it(memcached_server): pass")
    result = pytester.runpytest("-p", "no:cacheprovider", "--memcached=127.0.0.1:1")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*--memcached=127.0.0.1:1: no memcached answers at 127.0.0.1:1 (*"])
    assert (
        result.stdout.str().split("short test summary")[0].count("no memcached answers") == 1
    )  # (once: not chained to itself)


def test_under_xdist_results_reach_the_summary_and_json(pytester, no_new_memcached):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.slap(ops=1000, connections=2, keys=100)
        @pytest.mark.slap_thresholds("errors == 0")
        def test_a(slap):
            slap()

        @pytest.mark.slap(ops=1000, connections=2, keys=100)
        @pytest.mark.slap_thresholds("ops_per_sec >= 1G")
        def test_b(slap):
            slap()
        """
    )
    result = run_subprocess(pytester, "-n", "2", "--slap-json=x.json")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*slap summary*"])
    result.stdout.fnmatch_lines(["*test_a*1/1 pass*"])
    doc = json.loads((pytester.path / "x.json").read_text())
    assert sorted(doc["tests"]) == [
        "test_under_xdist_results_reach_the_summary_and_json.py::test_a",
        "test_under_xdist_results_reach_the_summary_and_json.py::test_b",
    ]


def test_markers_are_listed_with_every_workload_argument(pytester):
    from pytest_memaslap.model.workload import Workload

    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["*@pytest.mark.slap(**workload)*", "*slap_thresholds*", "*memcached(threads=*"])
    (slap_help,) = [line for line in result.stdout.lines if "@pytest.mark.slap(**workload)" in line]
    assert all(name in slap_help for name in Workload.argument_names())


def test_cleanup_deletes_the_runs_keys_on_an_external_server(pytester, no_new_memcached):
    from pytest_memaslap.memcached.server import ServerConfig, start_server

    server = start_server(ServerConfig(threads=1, memory_mb=64))
    try:
        client = server.client()
        client.set("precious", b"keep me")
        client.close()
        pytester.makepyfile(
            """
            import pytest

            @pytest.mark.slap(ops=3000, connections=4, keys=700, commands={"get": 0.5, "set": 0.5})
            def test_it(slap):
                assert slap().unmeasured_ops["cleanup"] == 700
            """
        )
        result = pytester.runpytest("-p", "no:cacheprovider", f"--memcached={server.address}", "--slap-cleanup")
        result.assert_outcomes(passed=1)
        assert _keys(server) == {b"precious"}
    finally:
        server.stop()


def _keys(server) -> set[bytes]:
    import socket
    from urllib.parse import unquote_to_bytes

    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(b"lru_crawler metadump all\r\n")
        data = b""
        while not data.endswith(b"END\r\n"):
            data += sock.recv(65536)
    return {unquote_to_bytes(line.split(b" ")[0][4:]) for line in data.splitlines() if line.startswith(b"key=")}


def test_server_errors_are_counted_per_command_and_shown(pytester):
    pytester.makepyfile(
        """
        import pytest

        # -M: answer "SERVER_ERROR out of memory" instead of evicting; 8 MB cannot hold 200 x 100 KB
        @pytest.mark.memcached(memory=8, args=["-M"])
        @pytest.mark.slap(ops=2000, connections=4, keys=200, value_size=100_000, commands={"get": 0.5, "set": 0.5})
        @pytest.mark.slap_thresholds("errors == 0")
        def test_full(slap):
            slap()
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--slap-json=r.json")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*errors == 0*== 0*FAIL*"])
    (test,) = json.loads((pytester.path / "r.json").read_text())["tests"].values()
    assert test["commands"]["set"]["errors"] > 0
    assert test["commands"]["get"]["errors"] == 0  # gets of values that never got stored are misses
    assert test["errors"] == test["commands"]["set"]["errors"]


def test_values_above_the_servers_item_size_limit_are_refused_before_the_run(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.slap(ops=10, connections=1, keys=10, value_size=2_000_000)
        def test_big(slap):
            slap()
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*value_size: values up to 2000000 bytes*exceed the server's item_size_max of 1048576*"]
    )


def test_the_design_briefs_example_runs_as_written(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.slap(duration="10s", connections=32, window=4,
                          commands={"get": 0.9, "set": 0.1},
                          keys=100_000, key_size=(16, 64), value_size=(64, 1024),
                          key_pattern="zipf:0.99")
        @pytest.mark.slap_thresholds("ops_per_sec >= 5k", "get.p99 < 1s", "errors == 0")
        def test_read_heavy(slap):
            result = slap()
            assert result.get.hit_ratio > 0.99
            assert result.workload.key_pattern == "zipf:0.99"
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--slap-duration=0.5")
    result.assert_outcomes(passed=1)


def test_a_failed_run_still_reports_what_it_did(pytester, no_new_memcached):
    pytester.makepyfile(
        """
        import threading
        import pytest
        from pytest_memaslap import SlapRunError

        @pytest.mark.memcached(threads=1)
        @pytest.mark.slap(duration="30s", connections=2, keys=100)
        def test_server_dies(slap, memcached_server):
            threading.Timer(0.5, memcached_server.process.kill).start()
            slap()
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--slap-json=r.json")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*SlapRunError*server closed the connection*", "*test_server_dies*unanswered)*run failed*"]
    )
    (test,) = json.loads((pytester.path / "r.json").read_text())["tests"].values()
    assert "server closed the connection" in test["error"]
    assert test["ops"] > 0
    # requests in flight when the server died: errors, by cause, and not counted as answered
    abandoned = sum(test["abandoned"].values())
    assert set(test["abandoned"]) <= {"connection_lost", "run_ended"} and 0 < abandoned == test["errors"]
    assert test["requests_sent"] == test["ops"] + sum(test["unmeasured_ops"].values()) + abandoned


def test_live_progress_lines_during_a_run_and_quiet_with_q(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.slap(duration="3s", connections=2, keys=100)
        def test_long(slap):
            slap()
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--slap-stat-freq=1")
    result.assert_outcomes(passed=1)
    lines = [line for line in result.stdout.lines if line.startswith("slap test_live_progress")]
    assert len(lines) >= 2, result.stdout.str()
    assert "1/3 s" in lines[0] and "ops/s" in lines[0] and "p99" in lines[0]
    quiet = pytester.runpytest("-p", "no:cacheprovider", "--slap-stat-freq=1", "-q")
    assert not [line for line in quiet.stdout.lines if line.startswith("slap test_live_progress")]


def test_help_lists_every_option_and_its_ini_key(pytester):
    from pytest_memaslap.memcached.sasl import SASL_PASSWORD_ENV
    from pytest_memaslap.plugin.optiontable import OPTIONS

    result = pytester.runpytest("--help")
    assert result.ret == pytest.ExitCode.OK
    text = result.stdout.str()
    for option in OPTIONS:
        assert option.flag in text, option.flag
        assert option.ini in text, option.ini
    assert "'ops_per_sec:-5%,get.p99:+10%'" in text  # a literal % in a help text, printed as written
    assert SASL_PASSWORD_ENV in text


def test_the_slap_marks_arguments_are_the_workloads():
    """The marker's help is written out (registering it loads no model): it must list what the mark takes."""
    from pytest_memaslap.model.workload import Workload
    from pytest_memaslap.plugin.hooks import MARK_ARGUMENTS

    assert MARK_ARGUMENTS == Workload.argument_names()


def test_a_suite_without_slap_tests_loads_nothing_of_the_plugin_beyond_its_options(pytester):
    """pytest loads the plugin in every session: until a test uses a mark or fixture of it, only the options
    table and the hooks are imported (measured: pytest --co on an empty folder 1.00x the time without it)."""
    pytester.makeconftest(
        """
        import sys

        def pytest_sessionfinish(session):
            loaded = sorted(m for m in sys.modules if m.startswith("pytest_memaslap."))
            print("\\nLOADED", loaded)
        """
    )
    pytester.makepyfile("def test_plain():\n    assert 1 + 1 == 2\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-s")
    result.assert_outcomes(passed=1)
    (line,) = [line for line in result.stdout.lines if line.startswith("LOADED")]
    loaded = set(eval(line.removeprefix("LOADED ")))
    assert loaded <= {
        "pytest_memaslap.hotpath",
        "pytest_memaslap.plugin",
        "pytest_memaslap.plugin.hooks",
        "pytest_memaslap.plugin.hookspecs",
        "pytest_memaslap.plugin.optiontable",
    }, loaded
    result.stdout.fnmatch_lines(["memaslap: hot path *; memcached started by the plugin on first use"])


def test_a_bad_call_is_one_message_at_the_tests_line_without_plugin_internals(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.slap(ops=100, keys=1000)
        def test_keys(slap):
            slap(key_size=(1, 250))  # (in the mark, collection fails: see the mixture test)

        @pytest.mark.slap(ops=100, keys=100)
        def test_override(slap):
            slap(window=0)
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=2)
    output = result.stdout.str()
    assert output.count("E       pytest_memaslap.model.parsers.WorkloadError: key_size: keys of 1 bytes") == 1
    assert output.count("E       pytest_memaslap.model.parsers.WorkloadError: window=0: must be at least 1") == 1
    assert "During handling" not in output and "no running event loop" not in output
    assert "pytest_memaslap/" not in output  # no plugin-internal source lines


def test_the_report_header_names_engine_loop_and_server(pytester, memcached_server):
    pytester.makepyfile("def test_plain():\n    pass\n")
    started = pytester.runpytest("-p", "no:cacheprovider")
    started.stdout.fnmatch_lines(["memaslap: hot path compiled, event loop uvloop; memcached started by the plugin*"])
    given_address = memcached_server.address
    given = pytester.runpytest("-p", "no:cacheprovider", f"--memcached={given_address}")
    given.stdout.fnmatch_lines([f"memaslap: hot path compiled, event loop uvloop; memcached at {given_address}"])


@pytest.mark.parametrize("xdist", [(), ("-n", "2")])
def test_other_plugins_hear_of_each_judged_result_and_can_change_the_json(pytester, xdist):
    pytester.makeconftest(
        """
        def pytest_memaslap_result(outcome, config):
            with open("results.txt", "a") as f:
                f.write(f"{outcome.key} {outcome.result.ops} {outcome.passed}\\n")

        def pytest_memaslap_update_json(document, config):
            document["build"] = "1234"
        """
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.slap(ops=500, connections=2, keys=100)
        @pytest.mark.slap_thresholds("errors == 0")
        def test_a(slap):
            slap()

        @pytest.mark.slap(ops=500, connections=2, keys=100)
        @pytest.mark.slap_thresholds("ops_per_sec >= 1G")
        def test_b(slap):
            slap()
        """
    )
    result = run_subprocess(pytester, *xdist, "--slap-json=r.json")
    result.assert_outcomes(passed=1, failed=1)
    lines = sorted((pytester.path / "results.txt").read_text().splitlines())
    name = "test_other_plugins_hear_of_each_judged_result_and_can_change_the_json.py"
    assert lines == [f"{name}::test_a 500 True", f"{name}::test_b 500 False"]  # once each, judged
    assert json.loads((pytester.path / "r.json").read_text())["build"] == "1234"


def test_keys_too_short_in_a_mixture_fail_collection(pytester, no_new_memcached):
    """A key_size mixture whose smallest keys cannot hold the prefix and index fails at collection, not at run."""
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.slap(key_size=[(10, 20, 0.5), (100, 120, 0.5)], keys=2000)
        def test_it(slap):
            slap()
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*key_size: keys of 10 bytes are too short for 2000 keys*use key_size of at least*"])


def test_a_preload_the_server_cannot_hold_is_refused_before_any_load(pytester):
    """400k keys of 1 kB into a 64 MB memcached (7 times over; beyond 4 is refused): refused with the numbers,
    instead of evicting for minutes."""
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.memcached(memory=64)
        @pytest.mark.slap(duration="1s", keys=400_000, value_size=1000, preload=True)
        def test_it(slap):
            slap()
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*keys=400000, preload=True: the preload of 400,000 keys needs about *MB*more than 4 times the 67 MB*-m*"]
    )

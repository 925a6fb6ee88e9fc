"""Shards across pytest-xdist workers: one logical test, synchronized shards, one merged verdict."""

from __future__ import annotations

import json
import sys
import time

import pytest
from conftest import output_within, run_subprocess, start_pytest

SHARDED_TEST = """
import pytest

@pytest.mark.slap(ops=4000, duration="30s", connections=4, keys=2000, commands={"get": 0.7, "set": 0.2, "delete": 0.1})
@pytest.mark.slap_thresholds("ops == 4000", "errors == 0")
def test_sharded(slap):
    result = slap()
    assert result.shards == 1  # what one shard sees of itself
    assert result.ops == 2000
"""


def _json(pytester, name="r.json"):
    return json.loads((pytester.path / name).read_text())


def test_two_shards_merge_into_one_result_matching_the_servers_counters(pytester, own_server):
    pytester.makepyfile(SHARDED_TEST)
    before = own_server.stats()
    # (--slap-stat-freq=0: the controller's progress polls would add gets of their own to the counters)
    result = run_subprocess(
        pytester, "--slap-shards=2", f"--memcached={own_server.address}", "--slap-json=r.json", "--slap-stat-freq=0"
    )
    after = own_server.stats()
    result.assert_outcomes(passed=2)  # one report per shard
    result.stdout.fnmatch_lines(["*slap summary*", "*test_sharded*  2 *2/2 pass*"])
    test = _json(pytester)["tests"][
        "test_two_shards_merge_into_one_result_matching_the_servers_counters.py::test_sharded"
    ]
    assert test["shards"] == 2 and test["ops"] == 4000
    assert [s["index"] for s in test["per_shard"]] == [0, 1]
    assert [s["ops"] for s in test["per_shard"]] == [2000, 2000]
    assert test["unmeasured_ops"]["preload"] == 2000  # each shard preloaded its own half
    moved = sum(after[n] - before[n] for n in ("cmd_get", "cmd_set", "delete_hits", "delete_misses"))
    moved += sum(after[n] - before[n] for n in ("incr_hits", "incr_misses"))  # the start barriers
    assert test["requests_sent"] == moved
    assert test["ops"] + sum(test["unmeasured_ops"].values()) == test["requests_sent"]
    assert test["start_skew_ms"] < 1000
    starts = [s["started_at"] for s in test["per_shard"]]
    ends = [s["started_at"] + s["duration_s"] for s in test["per_shard"]]
    assert max(starts) < min(ends), "the shards' measured windows did not overlap"


def test_thresholds_are_judged_on_the_aggregate(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.slap(ops=2000, connections=2, keys=200)
        @pytest.mark.slap_thresholds("ops == 2000", "errors == 0")
        def test_passes_only_as_a_whole(slap):
            assert slap().ops == 1000

        @pytest.mark.slap(ops=2000, connections=2, keys=200)
        @pytest.mark.slap_thresholds("ops_per_sec >= 1G")
        def test_fails(slap):
            slap()
        """
    )
    result = run_subprocess(pytester, "-n", "2", "--dist", "each")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*slap thresholds failed on the aggregate of 2 shards: 1 of 1*", "*FAIL*"])
    result.stdout.fnmatch_lines(["*test_passes_only_as_a_whole*2/2 pass*"])
    result.stdout.fnmatch_lines(["*test_fails*FAIL 1/1*"])
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] == 1 and outcomes["passed"] == 3


def test_a_killed_shard_fails_the_test_and_the_run(pytester, no_new_memcached):
    pytester.makeconftest(
        """
        import os
        import pytest

        @pytest.fixture(autouse=True)
        def die_on_second_worker(request):
            if getattr(request.config, "workerinput", {}).get("workerid") == "gw1":
                os._exit(3)
        """
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.slap(ops=1000, connections=2, keys=200)
        def test_one(slap):
            slap()
        """
    )
    started = time.monotonic()
    result = run_subprocess(pytester, "--slap-shards=2", "--slap-sync-timeout=60", "--slap-json=r.json")
    # the controller knows at once that gw1 died: shard 0 stops waiting, long before the 60 s bound
    assert time.monotonic() - started < 30
    assert result.ret != pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*the shards' preload barrier was called off: xdist worker gw1 went down*"])
    result.stdout.fnmatch_lines(["*worker 'gw1' crashed*"])
    assert not _json(pytester)["tests"]  # no aggregate passes with a shard missing


def test_a_shard_that_never_arrives_fails_the_others_at_the_sync_timeout(pytester, no_new_memcached):
    """A shard that is slow rather than dead (no crash to report): the bound still ends the wait."""
    pytester.makeconftest(
        """
        import time
        import pytest

        @pytest.fixture(autouse=True)
        def late_on_second_worker(request):
            if getattr(request.config, "workerinput", {}).get("workerid") == "gw1":
                time.sleep(4)
        """
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.slap(ops=1000, connections=2, keys=200)
        def test_one(slap):
            slap()
        """
    )
    result = run_subprocess(pytester, "--slap-shards=2", "--slap-sync-timeout=1")
    assert result.ret != pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*only 1 of 2 shards reached the preload barrier within 1 s; missing: shard 1*"])


def test_shards_over_execnet_popen_gateways(pytester):
    pytester.makepyfile(SHARDED_TEST)
    result = run_subprocess(
        pytester, "--tx", f"2*popen//python={sys.executable}", "--dist", "each", "--slap-json=r.json"
    )
    result.assert_outcomes(passed=2)
    (test,) = _json(pytester)["tests"].values()
    assert test["shards"] == 2 and test["ops"] == 4000


def test_workers_share_the_controllers_server_and_marks_that_need_another_fail_clearly(pytester, no_new_memcached):
    pytester.makepyfile(
        """
        import pytest

        def test_shared(memcached_server):
            assert not memcached_server.owned  # started by the controller, not by this worker

        @pytest.mark.memcached(threads=1)
        def test_own_server(memcached_server):
            pass
        """
    )
    result = run_subprocess(pytester, "-n", "2")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*asks for a server of its own, which pytest-xdist runs do not support*"])


def test_shards_option_conflicting_with_n_is_a_usage_error(pytester):
    pytester.makepyfile("def test_nothing(): pass")
    result = run_subprocess(pytester, "--slap-shards=2", "-n", "3")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--slap-shards=2 conflicts with -n 3*"])


def test_too_few_connections_for_the_shards_is_a_clear_error(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.slap(ops=100, connections=1, keys=100)
        def test_one(slap):
            slap()
        """
    )
    result = run_subprocess(pytester, "--slap-shards=2")
    result.stdout.fnmatch_lines(["*connections=1: fewer than the 2 shards*"])


def test_shards_without_xdist_is_a_usage_error(pytester):
    pytester.makepyfile("def test_nothing(): pass")
    result = run_subprocess(pytester, "-p", "no:xdist", "--slap-shards=2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--slap-shards=2 needs pytest-xdist*"])


def test_live_progress_under_xdist_is_merged_over_the_shards_by_the_controller(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.slap(duration="3s", connections=2, keys=200)
        def test_long(slap):
            slap()
        """
    )
    result = run_subprocess(pytester, "--slap-shards=2", "--slap-stat-freq=1")
    result.assert_outcomes(passed=2)
    lines = [line for line in result.stdout.lines if line.startswith("slap test_live_progress")]
    assert len(lines) >= 2, result.stdout.str()
    assert any("1/3 s" in line for line in lines)
    assert all("ops/s" in line and "p99" in line for line in lines)
    assert any("(last 1 s, 2 of 2 shards)" in line for line in lines), lines
    quiet = run_subprocess(pytester, "--slap-shards=2", "--slap-stat-freq=1", "-q")
    assert not [line for line in quiet.stdout.lines if line.startswith("slap test_live_progress")]


def test_ctrl_c_under_shards_reports_the_merged_partial_result_marked_interrupted(pytester, no_new_memcached):
    """A terminal's Ctrl-C reaches the controller and every worker: each shard's partial result still arrives."""
    import os
    import signal

    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.slap(duration="60s", connections=4, keys=1000)
        def test_long(slap):
            slap()
        """
    )
    process = start_pytest(pytester.path, "--slap-shards=2", "--slap-json=r.json", new_session=True)
    try:
        time.sleep(6)  # workers up, the load running
        os.killpg(process.pid, signal.SIGINT)
        signalled = time.monotonic()
        out = output_within(process, 40)
        ended_after = time.monotonic() - signalled
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    text = out.decode()
    assert process.returncode == pytest.ExitCode.INTERRUPTED, text
    assert ended_after < 20, text
    assert "interrupted" in text.split("slap summary")[-1], text
    (test,) = _json(pytester)["tests"].values()
    assert test["interrupted"] is True and test["shards"] == 2 and test["ops"] > 0

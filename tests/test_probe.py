"""The measurement probe: gets from a process of its own beside the load, their latencies kept apart."""

from __future__ import annotations

import json

import pytest

from pytest_memaslap import SlapRunError, Target, Workload, run_shard
from pytest_memaslap.model.workload import WorkloadError
from pytest_memaslap.stats.result import SlapResult


def test_the_probe_keeps_its_own_phase_and_every_request_is_still_accounted(own_server):
    workload = Workload.from_args(
        {"duration": "1.5s", "connections": 8, "window": 4, "keys": 2000, "value_size": 100, "probe_rate": 400}
    )
    result = SlapResult(workload, run_shard(workload, Target(own_server.host, own_server.port), "probe:"))
    probe = result.probe
    assert probe is not None and probe.misses == 0 and probe.errors == 0
    assert 350 <= probe.ops <= 850  # (about 400/s for 1.5 s, Poisson)
    assert probe.ops == result.raw.phases["probe"].ops and probe.ops + result.ops <= result.requests_sent
    assert "get" in result.commands and result.commands["get"].ops > 10 * probe.ops  # (the load's, apart)
    assert 0 < probe.latency_us["p50"] <= probe.latency_us["p99"] <= probe.latency_us["max"]


def test_probe_arguments_are_checked():
    with pytest.raises(WorkloadError, match="probe_rate=20000: a probe samples latency at a low rate"):
        Workload.from_args({"probe_rate": 20_000})
    with pytest.raises(WorkloadError, match="probe_rate: the probe gets keys of the keyspace over the ascii"):
        Workload.from_args({"probe_rate": 100, "protocol": "meta"})


def test_a_capacity_search_with_a_probe_is_refused(own_server):
    from pytest_memaslap.model.capacity import CapacitySearch

    workload = Workload.from_args({"probe_rate": 100, "duration": "1s"})
    search = CapacitySearch.from_args({"slo": ["get.p99 < 5ms"]}, workload.measured_commands(), 0.5)
    with pytest.raises(SlapRunError, match="probe_rate: a capacity search"):
        run_shard(workload, Target(own_server.host, own_server.port), "pc:", capacity=search)


def test_the_probe_in_a_test_its_thresholds_json_and_note(pytester, own_server):
    pytester.makepyfile(
        test_probed="""
        import pytest

        @pytest.mark.slap(duration="1s", connections=8, window=8, keys=2000, value_size=100, probe_rate="300")
        @pytest.mark.slap_thresholds("probe.p99 < 500ms", "probe.errors == 0")
        def test_probed(slap):
            assert slap().probe.ops > 0
        """,
        test_unprobed="""
        import pytest

        @pytest.mark.slap(duration="0.2s", keys=100)
        @pytest.mark.slap_thresholds("probe.p99 < 1ms")
        def test_unprobed(slap):
            slap()
        """,
    )
    args = ("-p", "no:cacheprovider", f"--memcached={own_server.address}", "--slap-json=r.json")
    refused = pytester.runpytest(*args, "test_unprobed.py")
    refused.assert_outcomes(errors=1)
    refused.stdout.fnmatch_lines(["*probe.p99 < 1ms*the workload has no probe; add probe_rate=*"])
    result = pytester.runpytest(*args, "test_probed.py")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["note: *test_probed: probe: * gets at */s beside the load: p50 * µs*(the load's get: p50*"]
    )
    (test,) = json.loads((pytester.path / "r.json").read_text())["tests"].values()
    assert test["probe"]["ops"] > 0 and test["probe"]["latency_us"]["p99"] > 0
    assert test["workload"]["probe_rate"] == 300.0

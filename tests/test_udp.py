"""transport="udp" (memaslap's -U): gets in datagrams, replies reassembled, losses counted, nothing hangs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pytest_memaslap import SlapRunError, Target, Workload, run_shard
from pytest_memaslap.memcached.server import ServerConfig, start_server
from pytest_memaslap.model.workload import WorkloadError


@pytest.fixture
def udp_server(no_new_memcached):
    server = start_server(ServerConfig(threads=2, memory_mb=64, udp=True))
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("value_size", [100, 5000])  # 5000 bytes: a reply of several datagrams
def test_udp_gets_hit_and_match_the_servers_counters(udp_server, value_size):
    workload = Workload.from_args(
        {
            "ops": 3000,
            "duration": None,
            "connections": 4,
            "window": 2,
            "keys": 300,
            "value_size": value_size,
            "commands": {"get": 1.0},
            "transport": "udp",
            "verify": 0.2,
        }
    )
    before = udp_server.stats()
    raw = run_shard(workload, Target(udp_server.host, udp_server.port), f"udp{value_size}:")
    after = udp_server.stats()
    get = raw.measured.commands["get"]
    assert get.ops == get.hits == 3000 and get.errors == 0  # preloaded over TCP, read over UDP
    assert after["cmd_get"] - before["cmd_get"] == 3000
    assert raw.verify["checked"] > 300 and raw.verify["mismatches"] == 0  # reassembled values are whole


def test_a_server_without_udp_fails_the_run_instead_of_waiting(own_server):
    workload = Workload.from_args(
        {"duration": "30s", "connections": 2, "keys": 50, "commands": {"get": 1.0}, "transport": "udp"}
    )
    with pytest.raises(SlapRunError, match="UDP: "):
        run_shard(workload, Target(own_server.host, own_server.port), "udpoff:")


def test_the_plugin_needs_a_udp_server_and_says_so(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.slap(ops=500, duration=None, connections=2, keys=100, commands={"get": 1.0}, transport="udp")
        @pytest.mark.slap_thresholds("errors == 0", "get.hit_ratio == 1")
        @pytest.mark.memcached(udp=True)
        def test_udp(slap):
            slap()

        @pytest.mark.slap(ops=500, duration=None, connections=2, keys=100, commands={"get": 1.0}, transport="udp")
        def test_no_udp(slap):
            slap()
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*transport='udp': this memcached does not listen on UDP*memcached(udp=True)*"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"transport": "udp"}, "transport='udp': UDP carries gets only"),
        ({"transport": "udp", "commands": {"get": 1.0}, "division": 3}, "single-key gets only"),
        ({"transport": "sctp"}, "transport='sctp': allowed: tcp, udp"),
    ],
)
def test_udp_limits_are_explained(args, message):
    with pytest.raises(WorkloadError, match=message):
        Workload.from_args(args)


def test_memaslap_py_udp(udp_server, tmp_path):
    config = tmp_path / "gets.cfg"
    config.write_text("cmd\n1 1\n")
    command = [sys.executable, "-m", "pytest_memaslap.cli.memaslap", "-s", udp_server.address, "-x", "1000", "-c", "2"]
    done = subprocess.run(
        [*command, "-w", "50", "-U", "-F", str(config)], capture_output=True, text=True, timeout=90, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "Ops: 1000 " in done.stdout and "get_misses: 0" in done.stdout

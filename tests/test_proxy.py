"""Through a real proxy: twemproxy (nutcracker) in front of two real memcached processes."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from pytest_memaslap.memcached.server import MemcachedServer, ServerConfig, free_port, item_size_limit, start_server

pytest_plugins = ["pytester"]
START_TIMEOUT_S = 5.0


class Proxy:
    def __init__(self, address: str, servers: list[MemcachedServer], process: subprocess.Popen[bytes]) -> None:
        self.address = address
        self.servers = servers
        self.process = process

    def counters(self) -> dict[str, int]:
        """The servers' counters added up: what reached them through the proxy."""
        total: dict[str, int] = {}
        for server in self.servers:
            for name, value in server.stats().items():
                if isinstance(value, int):
                    total[name] = total.get(name, 0) + value
        return total


@pytest.fixture
def twemproxy(tmp_path, no_new_memcached) -> Iterator[Proxy]:
    """nutcracker on a free port, sharding over two memcached processes of this test's own."""
    binary = shutil.which("nutcracker") or shutil.which("nutcracker", path="/usr/sbin:/usr/local/sbin")
    if binary is None:
        if os.environ.get("CI"):  # (.ci/setup installs it: in CI its absence is a failure, not a skip)
            pytest.fail("twemproxy (nutcracker) is missing although .ci/setup installs it")
        pytest.skip("twemproxy (nutcracker) is not installed: bash .ci/setup installs it")
    servers = [start_server(ServerConfig(threads=1, memory_mb=64)) for _ in range(2)]
    port, stats_port = free_port(), free_port()
    config = tmp_path / "nutcracker.yml"
    config.write_text(
        "pool:\n"
        f"  listen: 127.0.0.1:{port}\n"
        "  hash: fnv1a_64\n  distribution: ketama\n  timeout: 2000\n  servers:\n"
        + "".join(f"   - 127.0.0.1:{server.port}:1\n" for server in servers)
    )
    proxy = subprocess.Popen(
        [binary, "-c", str(config), "-s", str(stats_port), "-o", str(tmp_path / "nutcracker.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proxy.poll() is not None:
                    pytest.fail(f"nutcracker did not listen on {port} within {START_TIMEOUT_S:g} s")
                time.sleep(0.05)
        yield Proxy(f"127.0.0.1:{port}", servers, proxy)
    finally:
        proxy.terminate()
        try:
            proxy.wait(5)
        except subprocess.TimeoutExpired:
            proxy.kill()
            proxy.wait(5)
        for server in servers:
            server.stop()


def test_a_proxy_that_does_not_know_stats_settings_leaves_the_size_check_out(twemproxy):
    host, _, port = twemproxy.address.partition(":")
    assert item_size_limit(host, int(port), timeout=2.0) is None  # (twemproxy closes the connection)
    assert item_size_limit("127.0.0.1", twemproxy.servers[0].port) == 1024 * 1024


def test_a_preloaded_mix_with_multi_gets_through_twemproxy_adds_up_on_the_servers(pytester, twemproxy):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.slap(ops=3000, connections=4, keys=500, preload=True, division=4,
                          commands={"get": 0.6, "set": 0.3, "delete": 0.1})
        @pytest.mark.slap_thresholds("errors == 0")
        def test_mix(slap):
            slap()
        """
    )
    before = twemproxy.counters()
    result = pytester.runpytest("-p", "no:cacheprovider", f"--memcached={twemproxy.address}", "--slap-json=r.json")
    result.assert_outcomes(passed=1)
    after = twemproxy.counters()
    moved = {name: after[name] - before.get(name, 0) for name in after}
    (test,) = json.loads((pytester.path / "r.json").read_text())["tests"].values()
    commands = test["commands"]
    assert test["errors"] == 0 and commands["get"]["hits"] > 0
    assert moved["cmd_get"] == 4 * commands["get"]["ops"]  # a multi-get of 4 keys, split over the two servers
    assert moved["cmd_set"] == commands["set"]["ops"] + test["unmeasured_ops"]["preload"]
    assert moved["delete_hits"] + moved["delete_misses"] == commands["delete"]["ops"]
    assert moved["delete_hits"] == commands["delete"]["hits"]
    assert all(server.stats()["curr_items"] > 0 for server in twemproxy.servers)  # both shared the keys


@pytest.mark.parametrize("protocol", ["meta", "binary"])
def test_a_protocol_the_proxy_does_not_speak_is_named_in_the_failure(pytester, twemproxy, protocol):
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.slap(ops=500, connections=2, keys=100, protocol={protocol!r})
        def test_it(slap):
            slap()
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", f"--memcached={twemproxy.address}")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [f"*server closed the connection*does the server (or a proxy in front of it) speak protocol={protocol!r}?*"]
    )


def test_a_proxy_killed_mid_run_fails_the_run_at_once_with_what_was_done(twemproxy):
    """The proxy dies, the servers behind it live: the run ends within a second, naming the closed connection."""
    import signal
    import threading

    from pytest_memaslap import Target, Workload, run_shard
    from pytest_memaslap.engine.errors import SlapRunError

    host, port = twemproxy.address.rsplit(":", 1)
    workload = Workload.from_args({"duration": "20s", "connections": 4, "keys": 500, "timeout": "10s"})
    killer = threading.Timer(1.0, twemproxy.process.send_signal, (signal.SIGKILL,))
    killer.start()
    started = time.monotonic()
    with pytest.raises(
        SlapRunError, match=r"connection \d+ to 127\.0\.0\.1:\d+: server closed the connection"
    ) as failed:
        run_shard(workload, Target(host, int(port)), "pk:")
    took = time.monotonic() - started
    killer.join()
    assert took < 1.0 + 3.0, f"the run ended {took:.1f} s in, the proxy died at 1 s"
    partial = failed.value.partial
    assert partial is not None and partial.measured.ops > 0  # what was done until then is kept

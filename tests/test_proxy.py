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
    def __init__(
        self, address: str, stats: str, servers: list[MemcachedServer], process: subprocess.Popen[bytes]
    ) -> None:
        self.address = address
        self.stats = stats  # its stats port (published at least every second: -i 1000)
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
def twemproxy(request, tmp_path, no_new_memcached) -> Iterator[Proxy]:
    """nutcracker on a free port, sharding over two memcached processes of this test's own (indirect
    parameter "named": its configuration names the second backend instead of leaving it its address)."""
    named = getattr(request, "param", None) == "named"
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
        + "".join(
            f"   - 127.0.0.1:{server.port}:1{' beta' if named and i == 1 else ''}\n" for i, server in enumerate(servers)
        )
    )
    proxy = subprocess.Popen(
        [binary, "-c", str(config), "-s", str(stats_port), "-i", "1000", "-o", str(tmp_path / "nutcracker.log")],
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
        yield Proxy(f"127.0.0.1:{port}", f"127.0.0.1:{stats_port}", servers, proxy)
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


SAMPLED_TEST = """
import pytest

@pytest.mark.slap(duration="2s", connections=4, keys=500, preload=True, commands={"get": 0.8, "set": 0.2})
@pytest.mark.slap_thresholds("errors == 0", "server.proxy_errors == 0", "server.proxy_ejects == 0")
def test_through(slap):
    slap()
"""


def _sampled_through(pytester: pytest.Pytester, twemproxy: Proxy) -> dict:
    """SAMPLED_TEST through the proxy, its stats port given: the test's JSON entry."""
    pytester.makepyfile(SAMPLED_TEST)
    result = pytester.runpytest(
        "-p", "no:cacheprovider", f"--memcached={twemproxy.address}", f"--memcached-proxy-stats={twemproxy.stats}",
        "--slap-json=r.json",
    )  # fmt: skip
    result.assert_outcomes(passed=1)
    (test,) = json.loads((pytester.path / "r.json").read_text())["tests"].values()
    return test


def test_the_proxys_stats_and_its_backends_are_sampled_beside_the_run(pytester, twemproxy):
    """Its stats port read with every sample; its backends sampled as servers: both add up to our requests."""
    test = _sampled_through(pytester, twemproxy)
    server = test["server"]
    proxy = server["proxy"]
    assert proxy["error"] is None and proxy["service"] == "nutcracker"
    assert proxy["settled"] and proxy["readings"] >= 3 and "note" not in proxy
    ours = server["accounting"]["ours"]
    assert proxy["total"]["requests"] == proxy["total"]["responses"] == ours  # every request, and nothing else
    assert proxy["total"]["errors"] == 0 and server["total"]["proxy_errors"] == 0
    assert sum(b["requests"] for b in proxy["backends"]) == ours and all(b["requests"] for b in proxy["backends"])
    assert {s["server"] for s in server["servers"]} == {f"127.0.0.1:{s.port}" for s in twemproxy.servers}
    assert server["accounting"] == {"checked": True, "ours": ours, "servers": ours, "matches": True}
    assert server["total"]["ops"] > 0 and server["total"]["cpu_us_per_op"] > 0  # the backends' own figures
    assert proxy["timeline"] and all(point["errors"] == 0 for point in proxy["timeline"])


@pytest.mark.parametrize("twemproxy", ["named"], indirect=True)
def test_a_backend_the_proxy_names_otherwise_is_said_not_sampled(pytester, twemproxy):
    test = _sampled_through(pytester, twemproxy)
    servers = {s["server"]: s for s in test["server"]["servers"]}
    assert servers["beta"]["error"] == "pool pool: the proxy names this backend 'beta', not HOST:PORT: not sampled"
    assert servers[f"127.0.0.1:{twemproxy.servers[0].port}"]["ops"] > 0
    assert test["server"]["accounting"]["checked"] is False  # (one backend's requests are not known)
    assert {b["server"] for b in test["server"]["proxy"]["backends"]} == {
        "beta",
        f"127.0.0.1:{twemproxy.servers[0].port}",
    }


def test_a_stats_port_that_is_not_the_proxys_is_one_clear_failure(pytester, twemproxy):
    pytester.makepyfile(SAMPLED_TEST)
    wrong = f"127.0.0.1:{twemproxy.servers[0].port}"  # (a memcached: it writes nothing on connect)
    result = pytester.runpytest(
        "-p", "no:cacheprovider", f"--memcached={twemproxy.address}", f"--memcached-proxy-stats={wrong}"
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*--memcached-proxy-stats={wrong}: no twemproxy stats there (*22222 by default)"])
    assert result.stdout.str().split("short test summary")[0].count("no twemproxy stats there") == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--memcached-proxy-stats=127.0.0.1:22222"], "*--memcached-proxy-stats is for a twemproxy given with*"),
        (["--memcached=127.0.0.1:1", "--memcached-proxy-stats=22222"], "*-proxy-stats='22222': expected*HOST:PORT*"),
    ],
)
def test_proxy_stats_without_a_proxy_or_an_address_is_a_usage_error(pytester, args, message):
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_memaslap_py_reports_the_proxy_and_its_backends(twemproxy):
    import re
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "pytest_memaslap.cli.memaslap", "-s", twemproxy.address, "-x", "3000", "-c", "4",
         "-w", "100", "--proxy-stats", twemproxy.stats],
        capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for server in twemproxy.servers:
        assert re.search(rf"^  127\.0\.0\.1:{server.port}: \d+ requests", done.stdout, re.M), done.stdout
    sent = re.search(r"^  accounting: the servers counted (\d+) requests, this run sent \1: equal$", done.stdout, re.M)
    assert sent, done.stdout
    assert f"  proxy {twemproxy.stats}: {sent.group(1)} requests forwarded, 0 errors, 0 ejects" in done.stdout

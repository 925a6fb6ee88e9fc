"""Shards on two "hosts": network namespaces joined to this one by veth pairs, reached over execnet sockets.

memcached listens on this namespace's end of the first veth pair; each load
host runs execnet's socket server on its own address; pytest-xdist's
controller (here) sends a worker to each with ``--tx socket=...``. What
crosses the "network" is what would cross it between machines: the execnet
channels and the load itself.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import execnet
import pytest
from conftest import namespace_link, needs_namespaces, run_subprocess

pytestmark = needs_namespaces

SOCKETSERVER = Path(execnet.__file__).parent / "script" / "socketserver.py"
EXECNET_PORT = 18888


@pytest.fixture
def two_hosts():
    """Two namespaces, each a /30 veth link to this one; yields their addresses and ours."""
    processes = []
    with namespace_link(201, "slaph") as first, namespace_link(202, "slaph") as second:
        try:
            for link in (first, second):
                processes.append(
                    subprocess.Popen(
                        ["ip", "netns", "exec", link.namespace, sys.executable, str(SOCKETSERVER)]
                        + [f"{link.far}:{EXECNET_PORT}"],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
            time.sleep(1.0)  # the socket servers bind
            yield [first.far, second.far], first.near
        finally:
            for process in processes:
                process.kill()
                process.wait(5)


@pytest.fixture
def server_on_link(two_hosts):
    """A memcached on this side of the first link (UDP off), reachable from both hosts."""
    _, address = two_hosts
    port = 18911
    process = subprocess.Popen(
        ["memcached", "-l", address, "-U", "0", "-p", str(port), "-t", "2", "-m", "256", "-u", "root"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    try:
        yield f"{address}:{port}"
    finally:
        process.terminate()
        process.wait(10)


def test_two_hosts_run_one_sharded_test_against_one_server(pytester, two_hosts, server_on_link):
    hosts, _ = two_hosts
    test_file = pytester.makepyfile(
        """
        import socket
        import pytest

        @pytest.mark.slap(ops=4000, connections=4, keys=1000)
        @pytest.mark.slap_thresholds("ops == 4000", "errors == 0")
        def test_across_hosts(slap, memcached_server, memcached_client, request):
            result = slap()
            assert result.ops == 2000
            # each worker runs on its own "host": its address toward the server is its veth end
            with socket.create_connection((memcached_server.host, memcached_server.port)) as sock:
                source = sock.getsockname()[0]
            memcached_client.set("load-host-" + request.config.workerinput["workerid"], source)
        """
    )
    tx = [arg for host in hosts for arg in ("--tx", f"socket={host}:{EXECNET_PORT}")]
    result = run_subprocess(
        pytester,
        *tx,
        "--dist",
        "each",
        f"--memcached={server_on_link}",
        f"--slap-json={pytester.path / 'r.json'}",
        "-s",
        "--rsyncdir",
        str(pytester.path),
        str(test_file),
    )
    result.assert_outcomes(passed=2)
    (test,) = json.loads((pytester.path / "r.json").read_text())["tests"].values()
    assert test["shards"] == 2 and test["ops"] == 4000 and test["errors"] == 0
    assert test["start_skew_ms"] < 50
    host, port = server_on_link.split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"get load-host-gw0 load-host-gw1\r\n")
        reply = b""
        while not reply.endswith(b"END\r\n"):
            reply += sock.recv(4096)
    sources = {line for line in reply.split(b"\r\n") if line.startswith(b"10.")}
    assert sources == {h.encode() for h in hosts}, "the two shards did not run on the two hosts"

"""Faults of the network and the server's limits, as docs/faults.md's table promises them.

Each case runs against a real memcached: a connection table smaller than the
load's connections, and a link that goes down mid-run (a veth pair into a
network namespace, set down with ``ip link``). The server killed, paused and
restarted are in ``test_engine.py``; the proxy killed in ``test_proxy.py``;
interrupts in ``test_interrupt*.py``; unwritable outputs in ``test_outputs.py``.
"""

from __future__ import annotations

import abc
import json
import sys
import textwrap
import threading
import time

import pytest
from conftest import ip, namespace_link, needs_namespaces

from pytest_memaslap import Target, Workload, run_shard
from pytest_memaslap.engine.errors import SlapRunError
from pytest_memaslap.memcached.server import ServerConfig, start_server


def test_a_full_connection_table_fails_the_run_at_once_naming_the_connection(no_new_memcached):
    """memcached -c 20 against 32 connections: it resets those beyond its table; the run ends at once, clearly."""
    server = start_server(ServerConfig(threads=1, memory_mb=64, extra_args=("-c", "20")))
    try:
        workload = Workload.from_args({"duration": "5s", "connections": 32, "keys": 100})
        started = time.monotonic()
        with pytest.raises(SlapRunError, match=r"connection \d+ to 127\.0\.0\.1:\d+: ") as failed:
            run_shard(workload, Target(server.host, server.port), "full:")
        assert time.monotonic() - started < 3.0
        # memcached writes why, then closes: whichever of the two reaches the connection first is named
        message = str(failed.value)
        assert "server closed the connection" in message or (
            "Too many open connections" in message and "memcached -c (its connection limit)" in message
        ), message
    finally:
        server.stop()


LINK_LOAD = """
import json, sys
from pytest_memaslap import Target, Workload, run_shard
from pytest_memaslap.stats.result import SlapResult

workload = Workload.from_args({"duration": "4s", "connections": 4, "keys": 500, "timeout": "20s"})
raw = run_shard(workload, Target(sys.argv[1], int(sys.argv[2])), "down:")
result = SlapResult(workload, raw)
print(json.dumps({"ops": result.ops, "requests": raw.requests_sent, "errors": result.errors, "max_us": result.max}))
"""


@needs_namespaces
def test_a_link_down_for_a_second_and_a_half_stalls_the_load_and_loses_nothing(no_new_memcached, tmp_path):
    """The load crosses a veth link that goes down at 1 s for 1.5 s: TCP carries every request through.

    The run ends normally, every request is answered (memcached's counters
    agree), and the stall shows in the latency's maximum.
    """
    with namespace_link(209, "slapdown") as link:
        server = start_server(ServerConfig(threads=1, memory_mb=64, extra_args=("-l", link.near)))
        try:
            before = server.stats()
            script = tmp_path / "link_load.py"
            script.write_text(textwrap.dedent(LINK_LOAD))

            def flap() -> None:
                time.sleep(1.0)
                ip("link", "set", link.device, "down")
                time.sleep(1.5)
                ip("link", "set", link.device, "up")

            flapper = threading.Thread(target=flap)
            flapper.start()
            done = link.run(sys.executable, str(script), link.near, str(server.port), capture_output=True, timeout=120)
            flapper.join()
            assert done.returncode == 0, done.stderr[-3000:]
            out = json.loads(done.stdout.strip().splitlines()[-1])
            after = server.stats()
        finally:
            server.stop()
    reached = sum(after[name] - before[name] for name in ("cmd_get", "cmd_set"))
    assert out["errors"] == 0, out
    assert out["requests"] == reached, (out, reached)  # nothing lost on the way, nothing sent twice
    assert out["max_us"] >= 1.2e6, out  # the requests in flight while the link was down waited for it


class ScriptedServer(abc.ABC):
    """A loopback TCP listener that hands each connection to ``serve`` in a thread of its own (fault injection)."""

    def __init__(self) -> None:
        import socket

        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(client,), daemon=True).start()

    @abc.abstractmethod
    def serve(self, client) -> None:  # noqa: ANN001 - a test helper
        """What the scripted server does with one client's connection (each fault its own)."""

    def close(self) -> None:
        self.listener.close()


class CuttingRelay(ScriptedServer):
    """A TCP relay to memcached that cuts a client connection after ``limit`` bytes from the client (as a proxy
    that drops a connection mid-run does); connections opened after the first cut pass whole."""

    def __init__(self, upstream: tuple[str, int], limit: int) -> None:
        self.upstream, self.limit = upstream, limit
        self.cutting = True
        self.cuts = 0
        super().__init__()

    def serve(self, client) -> None:  # noqa: ANN001 - a test helper
        import socket

        server = socket.create_connection(self.upstream)
        limit = self.limit if self.cutting else None
        threading.Thread(target=self._pipe, args=(server, client, None), daemon=True).start()
        self._pipe(client, server, limit)

    def _pipe(self, source, sink, limit) -> None:  # noqa: ANN001 - a test helper
        moved = 0
        try:
            while data := source.recv(65536):
                sink.sendall(data)
                moved += len(data)
                if limit is not None and moved > limit:
                    self.cuts += 1
                    self.cutting = False  # (the cleanup's fresh connections pass whole)
                    break
        except OSError:
            pass
        for sock in (source, sink):
            try:
                sock.close()
            except OSError:
                pass


def test_a_failed_run_still_deletes_its_keys_with_cleanup(own_server):
    """A connection cut mid-run fails the run; --slap-cleanup still deletes what the run wrote (fresh connections)."""
    relay = CuttingRelay((own_server.host, own_server.port), limit=300_000)
    try:
        workload = Workload.from_args(
            {"duration": "3s", "connections": 4, "keys": 1000, "preload": True, "value_size": 1000}
        )
        with pytest.raises(SlapRunError):
            run_shard(workload, Target("127.0.0.1", relay.port), "cut:", cleanup=True)
        assert relay.cuts >= 1
    finally:
        relay.close()
    assert int(own_server.stats()["curr_items"]) == 0


class JunkServer(ScriptedServer):
    """Answers ``version`` as memcached does and every other line with junk."""

    def serve(self, client) -> None:  # noqa: ANN001 - a test helper
        buffer = b""
        with client:
            try:
                while data := client.recv(65536):
                    buffer += data
                    *lines, buffer = buffer.split(b"\r\n")
                    replies = (b"VERSION 1.6.0\r\n" if line == b"version" else b"HELLO?\r\n" for line in lines)
                    client.sendall(b"".join(replies))
            except OSError:
                pass


def test_a_server_answering_only_junk_ends_the_run_quoting_it(no_new_memcached):
    """Each junk reply is a sign of life to the no-reply watchdog: the run ended only by its own errors check."""
    server = JunkServer()
    try:
        workload = Workload.from_args(
            {"duration": "60s", "connections": 2, "keys": 100, "commands": {"get": 1.0}, "preload": False}
        )
        started = time.monotonic()
        with pytest.raises(
            SlapRunError,
            match=r"every reply of memcached at 127\.0\.0\.1:\d+ for \d+ s was an error .*: a plain `get` on a "
            r"connection of its own was answered b'HELLO\?\\r\\n': is it a memcached server\?",
        ):
            run_shard(workload, Target("127.0.0.1", server.port), "junk:")
        assert time.monotonic() - started < 30
    finally:
        server.close()


def test_a_preload_too_slow_for_its_keyspace_ends_at_its_deadline(own_server, monkeypatch):
    """Requests held 200 ms on their way (a relay): the preload would take half a minute; its deadline ends it."""
    import subprocess
    from pathlib import Path

    from pytest_memaslap.engine import shard

    monkeypatch.setattr(shard, "PRELOAD_MIN_S", 1.0)  # (at least 1000 keys a second, as always; 1 s at the least)
    relay = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("delay_relay.py")), str(own_server.port), "200000"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert relay.stdout is not None
        port = int(relay.stdout.readline())
        workload = Workload.from_args({"duration": "1s", "connections": 1, "keys": 3000, "preload": True})
        started = time.monotonic()
        with pytest.raises(SlapRunError, match=r"preload: not done within 3 s \(3,000 keys on this shard"):
            run_shard(workload, Target("127.0.0.1", port), "slowfill:")
        assert time.monotonic() - started < 20
    finally:
        relay.terminate()
        relay.communicate(timeout=10)

"""Aligned start of shards: a barrier kept on the memcached server under test.

Shards may run in different processes or on different machines; the one
thing they all reach is the server. Each shard ``incr``-ements a counter key
under the run's prefix and polls it (``incr key 0``, every millisecond) until
all shards have arrived, so they start a phase within a few milliseconds of
each other. Every wait is bounded; a shard that never arrives fails the others
with the count that did. The barrier's own requests are counted (phase
``sync``) so the run's totals still match the server's counters. It speaks
ASCII, or the binary protocol on a server that requires SASL.
"""

from __future__ import annotations

import asyncio
import struct
from time import perf_counter_ns
from typing import Any

from pytest_memaslap.engine.connect import open_streams
from pytest_memaslap.engine.errors import SlapRunError
from pytest_memaslap.engine.loop import within
from pytest_memaslap.memcached.sasl import SaslError
from pytest_memaslap.protocol import binary
from pytest_memaslap.stats.results import CommandStats, PhaseStats

POLL_S = 0.001
CALL_OFF_POLL_S = 0.1  # how often a waiting shard looks for the run being called off (a dead shard)
_STORE_EXTRAS = struct.pack(">II", 0, 600)  # flags, expiry: a barrier key outlives any run's wait
_NO_CREATE = 0xFFFFFFFF  # incr's expiry field: a missing key is NOT_FOUND, never created


class ServerBarrier:
    """A reusable, named barrier for ``count`` shards on one memcached."""

    def __init__(
        self, server: Any, prefix: str, index: int, count: int, timeout: float, call_off_key: str | None = None
    ) -> None:
        self.server = server  # a Target: where the barrier lives, and how to connect (TLS or not)
        self.prefix = prefix
        self.index = index
        self.count = count
        self.timeout = timeout
        self.call_off_key = call_off_key.encode() if call_off_key else None
        self.stats = PhaseStats({"set": CommandStats(), "get": CommandStats(), "incr": CommandStats()})
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self.binary = server.sasl is not None  # a SASL server answers nothing but the binary protocol

    async def wait(self, name: str) -> None:
        """Return once all ``count`` shards have called ``wait(name)``; raise after ``timeout``."""
        deadline = perf_counter_ns() + int(self.timeout * 1e9)
        try:
            await within(self.timeout, self._connect())
            key = f"{self.prefix}sync-{name}".encode()
            await self._store(b"add", key, b"0")
            await self._store(b"set", self._marker(key, self.index), b"1")
            arrived = await self._incr(key, 1)
            next_look = perf_counter_ns()
            while arrived < self.count:
                if self.call_off_key is not None and perf_counter_ns() >= next_look:
                    why = await self._get(self.call_off_key)
                    if why is not None:
                        raise SlapRunError(f"the shards' {name} barrier was called off: {why.decode(errors='replace')}")
                    next_look = perf_counter_ns() + int(CALL_OFF_POLL_S * 1e9)
                if perf_counter_ns() > deadline:
                    missing = await self._missing(key)
                    raise SlapRunError(
                        f"only {arrived} of {self.count} shards reached the {name} barrier within "
                        f"{self.timeout:g} s; missing: shard {', '.join(map(str, missing))} "
                        "(see --slap-sync-timeout)"
                    )
                await asyncio.sleep(POLL_S)
                arrived = await self._incr(key, 0)
        except SaslError as exc:
            raise SlapRunError(f"shard barrier: {exc}") from None
        except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
            raise SlapRunError(f"shard barrier on {self.server} failed: {exc!r}") from None

    @staticmethod
    def _marker(key: bytes, index: int) -> bytes:
        return key + b"." + str(index).encode()

    async def _missing(self, key: bytes) -> list[int]:
        """The shards whose arrival marker is absent (one multi-get)."""
        assert self._reader is not None and self._writer is not None
        markers = [self._marker(key, i) for i in range(self.count)]
        started = perf_counter_ns()
        found: set[bytes] = set()
        received = 0
        if self.binary:
            request = binary.multi_get_request(markers)
            self._writer.write(request)
            while True:
                opcode, status, found_key, _, size = await self._binary_reply()
                received += size
                if opcode == binary.NOOP:
                    break
                if status == binary.OK:
                    found.add(found_key)
        else:
            request = b"get " + b" ".join(markers) + b"\r\n"
            self._writer.write(request)
            while True:
                line = await within(self.timeout, self._reader.readuntil(b"\r\n"))
                received += len(line)
                if line == b"END\r\n":
                    break
                found.add(line.split()[1])
                received += len(await self._reader.readuntil(b"\r\n"))
        stats = self.stats.commands["get"]
        stats.ops += len(markers)  # memcached counts a multi-get per key
        stats.hits += len(found)
        stats.misses += len(markers) - len(found)
        stats.bytes_sent += len(request)
        stats.bytes_received += received
        stats.latency.record(perf_counter_ns() - started, len(markers))
        return [i for i, marker in enumerate(markers) if marker not in found]

    async def _get(self, key: bytes) -> bytes | None:
        """One key's value, or None when it is absent (counted as a get of the sync phase)."""
        assert self._reader is not None and self._writer is not None
        started = perf_counter_ns()
        value: bytes | None = None
        if self.binary:
            request = binary.get_request(key)
            self._writer.write(request)
            _, status, _, body, received = await self._binary_reply()
            value = body if status == binary.OK else None
        else:
            request = b"get " + key + b"\r\n"
            self._writer.write(request)
            line = await within(self.timeout, self._reader.readuntil(b"\r\n"))
            received = len(line)
            if line != b"END\r\n":
                data = await within(self.timeout, self._reader.readuntil(b"\r\nEND\r\n"))
                received += len(data)
                value = data[: -len(b"\r\nEND\r\n")]
        stats = self.stats.commands["get"]
        stats.ops += 1
        stats.hits += value is not None
        stats.misses += value is None
        stats.bytes_sent += len(request)
        stats.bytes_received += received
        stats.latency.record(perf_counter_ns() - started)
        return value

    async def _connect(self) -> None:
        if self._writer is None:
            self._reader, self._writer = await open_streams(self.server)

    async def _store(self, verb: bytes, key: bytes, value: bytes) -> None:
        """``add`` or ``set`` a one-byte value; an ``add`` that finds the key is the expected outcome."""
        if self.binary:
            opcode = binary.ADD if verb == b"add" else binary.SET
            await self._request("set", binary.request(opcode, key, _STORE_EXTRAS, value))
        else:
            await self._request("set", verb + b" " + key + b" 0 600 1\r\n" + value + b"\r\n")

    async def _incr(self, key: bytes, delta: int) -> int:
        if self.binary:
            extras = struct.pack(">QQI", delta, 0, _NO_CREATE)
            status, value = await self._request("incr", binary.request(binary.INCR, key, extras))
            if status != binary.OK or len(value) != 8:
                raise SlapRunError(f"shard barrier: unexpected reply to incr: status 0x{status:04x} {value!r}")
            return int(struct.unpack(">Q", value)[0])
        _, line = await self._request("incr", b"incr " + key + b" " + str(delta).encode() + b"\r\n")
        if not line.isdigit():
            raise SlapRunError(f"shard barrier: unexpected reply to incr: {line!r}")
        return int(line)

    async def _binary_reply(self) -> tuple[int, int, bytes, bytes, int]:
        """(opcode, status, key, value, bytes read) of the next binary reply."""
        assert self._reader is not None
        header = await within(self.timeout, self._reader.readexactly(24))
        _, opcode, key_length, extras_length, _, status, length, _, _ = binary.HEADER.unpack(header)
        body = await within(self.timeout, self._reader.readexactly(length)) if length else b""
        key_end = extras_length + key_length
        return opcode, status, body[extras_length:key_end], body[key_end:], 24 + length

    async def _request(self, command: str, request: bytes) -> tuple[int, bytes]:
        """One request and its reply: (binary status, value) or (0, the stripped ASCII line)."""
        assert self._reader is not None and self._writer is not None
        started = perf_counter_ns()
        self._writer.write(request)
        if self.binary:
            _, status, _, value, size = await self._binary_reply()
            reply = (status, value)
        else:
            line = await within(self.timeout, self._reader.readuntil(b"\r\n"))
            reply, size = (0, line.strip()), len(line)
        stats = self.stats.commands[command]
        stats.ops += 1
        stats.hits += 1
        stats.bytes_sent += len(request)
        stats.bytes_received += size
        stats.latency.record(perf_counter_ns() - started)
        return reply

    def close(self) -> PhaseStats:
        """Close the connection; the barrier's requests as a phase of their own."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self.stats.commands = {k: v for k, v in self.stats.commands.items() if v.ops}
        return self.stats

"""SASL authentication (memcached started with ``-S``): PLAIN over the binary protocol.

A memcached with SASL on answers only the binary protocol, and only
``version`` before a connection has authenticated; an ASCII request gets no
answer at all. So every connection to such a server authenticates first:
the load's (``Login``), the shards' barrier's (``authenticate``), and the
control paths' (readiness probe, stats, flush, progress records), which use
the small blocking client here because pymemcache has no SASL. The password never appears in a repr, an
error message or a report.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import struct
from dataclasses import dataclass, field
from typing import Any

from .engine import binary

PLAIN = b"PLAIN"
SASL_PASSWORD_ENV = "MEMCACHED_SASL_PASSWORD"  # where the password comes from when no option gives it
_SET_EXTRAS = struct.Struct(">II")  # flags, expiry


class SaslError(RuntimeError):
    """Authentication failed, or the server does not speak SASL; the message says which and where."""


@dataclass(frozen=True)
class SaslCredentials:
    """Who to authenticate as (``--memcached-sasl-user`` and its password)."""

    user: str
    password: str = field(repr=False)

    def auth_request(self) -> bytes:
        """A SASL_AUTH packet with the PLAIN mechanism: no authorization identity, the user, the password."""
        return binary.request(binary.SASL_AUTH, PLAIN, b"", b"\0" + self.user.encode() + b"\0" + self.password.encode())

    def check_reply(self, status: int, body: bytes, where: str) -> None:
        """Raise a clear SaslError unless the server answered the auth request with success."""
        if status == binary.OK:
            return
        said = body.decode(errors="replace").strip() or f"status 0x{status:04x}"
        if status == binary.UNKNOWN_COMMAND:
            raise SaslError(f"{where} does not take SASL ({said}): it was started without -S; drop the SASL user")
        raise SaslError(
            f"SASL authentication as {self.user!r} failed at {where} ({said}); "
            f"check the SASL user and its password ({SASL_PASSWORD_ENV} or the password option)"
        )


def credentials_from(
    user: str | None, password: str | None, user_flag: str, password_flag: str
) -> SaslCredentials | None:
    """The user and its password (the option, else the environment); errors name the options."""
    if not user:
        if password:
            raise SaslError(f"{password_flag} needs {user_flag}")
        return None
    if password is None:
        password = os.environ.get(SASL_PASSWORD_ENV)
    if password is None:
        raise SaslError(f"{user_flag}={user}: no password; set {SASL_PASSWORD_ENV} or pass {password_flag}")
    return SaslCredentials(user, password)


def workload_problem(protocol: str, transport: str) -> str | None:
    """Why a workload cannot run against a server that requires SASL, or None when it can."""
    if protocol != "binary":
        return (
            f"protocol={protocol!r}: a memcached that requires SASL answers only the binary protocol; "
            "use protocol='binary' (--slap-protocol=binary, memaslap-py -B)"
        )
    if transport != "tcp":
        return f"transport={transport!r}: SASL logs in a connection, and UDP has none; use transport='tcp'"
    return None


def _unpack(header: bytes) -> tuple[int, int, int, int, int]:
    """(opcode, key length, extras length, status, body length) of a reply header."""
    magic, opcode, key_length, extras_length, _, status, body, _, _ = binary.HEADER.unpack(header)
    if magic != binary.RESPONSE:
        raise SaslError(f"expected a binary protocol reply, got {header[:8]!r}")
    return opcode, key_length, extras_length, status, body


async def authenticate(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, credentials: SaslCredentials, where: str
) -> None:
    """Authenticate a fresh stream connection (the caller bounds the wait)."""
    writer.write(credentials.auth_request())
    _, _, _, status, length = _unpack(await reader.readexactly(24))
    credentials.check_reply(status, await reader.readexactly(length), where)


class Login(asyncio.Protocol):
    """A connection's first protocol under SASL: sends the auth request, waits for its reply.

    Once ``done`` resolves the caller hands the transport to the load's own
    protocol (``transport.set_protocol``), so the hot path never sees SASL.
    """

    def __init__(self, credentials: SaslCredentials, where: str) -> None:
        self.credentials = credentials
        self.where = where
        self.buffer = b""
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(self.credentials.auth_request())  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) < 24 or self.done.done():
            return
        try:
            _, _, _, status, length = _unpack(self.buffer[:24])
            if len(self.buffer) < 24 + length:
                return
            if len(self.buffer) > 24 + length:
                raise SaslError(f"{self.where} sent more than the auth reply: {self.buffer[24 + length :][:40]!r}")
            self.credentials.check_reply(status, self.buffer[24:], self.where)
        except SaslError as exc:
            self.done.set_exception(exc)
            return
        self.done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(SaslError(f"{self.where} closed the connection while logging in (SASL)"))


class BinaryClient:
    """A blocking binary-protocol client that authenticates on connect: the control paths under SASL.

    It offers the few calls of pymemcache's ``Client`` those paths use, with
    the same shapes, so the callers do not care which one they hold.
    """

    def __init__(
        self,
        address: tuple[str, int],
        credentials: SaslCredentials,
        timeout: float = 5.0,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host, self.port = address
        self.credentials = credentials
        self.timeout = timeout
        self.tls = tls_context
        self.sock: socket.socket | None = None

    @property
    def where(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def _connect(self) -> socket.socket:
        if self.sock is None:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_hostname=self.host)
            self.sock = sock
            try:
                status, _, value = self._exchange(self.credentials.auth_request())[0]
                self.credentials.check_reply(status, value, self.where)
            except BaseException:
                self.close()
                raise
        return self.sock

    def _read(self, size: int) -> bytes:
        assert self.sock is not None
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise ConnectionError(f"{self.where} closed the connection")
            data += chunk
        return data

    def _reply(self) -> tuple[int, int, bytes, bytes]:
        """(opcode, status, key, value) of the next reply."""
        opcode, key_length, extras_length, status, length = _unpack(self._read(24))
        body = self._read(length)
        key_end = extras_length + key_length
        return opcode, status, body[extras_length:key_end], body[key_end:]

    def _exchange(self, request: bytes, until: int | None = None) -> list[tuple[int, bytes, bytes]]:
        """Send ``request``; read (status, key, value) replies: one, or up to the one with opcode ``until``."""
        assert self.sock is not None
        self.sock.sendall(request)
        replies = []
        while True:
            opcode, status, key, value = self._reply()
            replies.append((status, key, value))
            if until is None or opcode == until:
                return replies

    def _call(self, request: bytes, until: int | None = None) -> list[tuple[int, bytes, bytes]]:
        self._connect()
        try:
            return self._exchange(request, until)
        except BaseException:
            self.close()  # a half-read reply leaves the stream unusable: start afresh next time
            raise

    def version(self) -> bytes:
        return self._call(binary.request(binary.VERSION, b""))[0][2]

    def stats(self, *args: str) -> dict[bytes, bytes]:
        """``stats [group]``: the server sends one packet per statistic, then one with an empty key."""
        sock = self._connect()
        key = " ".join(args).encode()
        stats: dict[bytes, bytes] = {}
        try:
            sock.sendall(binary.request(binary.STAT, key))
            while True:
                _, status, name, value = self._reply()
                if status != binary.OK:
                    raise SaslError(f"stats {key.decode()!r} at {self.where}: {value.decode(errors='replace')}")
                if not name:
                    return stats
                stats[name] = value
        except BaseException:
            self.close()  # (as in _call)
            raise

    def flush_all(self) -> bool:
        return self._call(binary.request(binary.FLUSH, b""))[0][0] == binary.OK

    def set(self, key: str, value: bytes | str, expire: int = 0, noreply: Any = None) -> bool:
        data = value.encode() if isinstance(value, str) else value
        request = binary.request(binary.SET, key.encode(), _SET_EXTRAS.pack(0, expire), data)
        return self._call(request)[0][0] == binary.OK

    def get_many(self, keys: list[str]) -> dict[str, bytes]:
        """Quiet GETKQ requests closed by NOOP: only hits answer, each naming its key."""
        if not keys:
            return {}
        request = b"".join(binary.request(binary.GETKQ, key.encode()) for key in keys)
        replies = self._call(request + binary.request(binary.NOOP, b""), until=binary.NOOP)
        return {key.decode(): value for status, key, value in replies[:-1] if status == binary.OK}

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

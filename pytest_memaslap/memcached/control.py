"""The control client: stats, flush, readiness and progress records, apart from the load.

pymemcache's client where it can be used; under SASL, which pymemcache lacks,
a small blocking binary-protocol client that logs in on connect. Both have the
same call shapes for what the plugin asks of them.
"""

from __future__ import annotations

import socket
import ssl
import struct
from typing import Any

from pymemcache.client.base import Client

from pytest_memaslap.memcached.sasl import SaslCredentials, SaslError, unpack_reply_header
from pytest_memaslap.protocol import binary

_SET_EXTRAS = struct.Struct(">II")  # flags, expiry


def control_client(
    host: str, port: int, timeout: float, tls: ssl.SSLContext | None = None, sasl: SaslCredentials | None = None
) -> Client | BinaryClient:
    """pymemcache's client, or under SASL (which pymemcache lacks) our binary one; both connect lazily."""
    if sasl is not None:
        return BinaryClient((host, port), sasl, timeout, tls)
    return Client((host, port), connect_timeout=timeout, timeout=timeout, tls_context=tls)


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
        opcode, key_length, extras_length, status, length = unpack_reply_header(self._read(24))
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

    def flush_all(self, noreply: Any = None) -> bool:
        """(Always waits for the server's answer, whatever ``noreply`` says: pymemcache's signature.)"""
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

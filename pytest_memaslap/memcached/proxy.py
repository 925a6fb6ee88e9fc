"""A twemproxy (nutcracker) stats port: the JSON document it writes to each connection, and its backends.

twemproxy does not answer memcached's ``stats``; it writes its own counters
as one JSON document to whoever connects to its stats port (``-s``, 22222
by default) and closes. They are aggregated every ``-i`` milliseconds (30 s
by default): the document's ``timestamp`` says when they were.
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any

from pytest_memaslap.memcached.server import ServerError, parse_address

MAX_DOCUMENT_BYTES = 16 * 1024 * 1024  # (a proxy of thousands of backends writes a few hundred kB)


class ProxyStatsError(Exception):
    """The proxy's stats port did not give its JSON document; the message says why."""


def read_proxy_stats(host: str, port: int, timeout: float) -> dict[str, Any]:
    """The stats document the proxy writes on connect (every read bounded by ``timeout``, all by 2x it)."""
    deadline = time.monotonic() + 2 * timeout
    data = bytearray()
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            while len(data) <= MAX_DOCUMENT_BYTES:
                if time.monotonic() > deadline:
                    raise ProxyStatsError(f"no whole document within {2 * timeout:g} s")
                chunk = sock.recv(1 << 16)
                if not chunk:
                    break
                data += chunk
    except OSError as exc:
        raise ProxyStatsError(exc.strerror or str(exc)) from None
    try:
        document = json.loads(data)
    except ValueError:
        raise ProxyStatsError(f"not a JSON document: {bytes(data[:60])!r}") from None
    if not isinstance(document, dict) or "timestamp" not in document:
        raise ProxyStatsError("a JSON document without a timestamp: not twemproxy's stats")
    return document


def backends(document: dict[str, Any]) -> list[tuple[str, str]]:
    """(pool, server name) of every backend the document names, in its order."""
    return [
        (pool, name)
        for pool, entries in document.items()
        if isinstance(entries, dict)
        for name, value in entries.items()
        if isinstance(value, dict)
    ]


def backend_address(name: str) -> tuple[str, int] | None:
    """A backend's (host, port) when the proxy names it by its address (None: the configuration named it)."""
    try:
        return parse_address(name)
    except ServerError:
        return None

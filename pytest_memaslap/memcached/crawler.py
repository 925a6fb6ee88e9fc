"""A live server's items, read through ``lru_crawler metadump all``: streamed, bounded, read-only.

The crawler walks the server's LRUs and writes one line an item (``key=...
exp=... la=... cas=... fetch=... cls=... size=...``). Nothing is written to
the server and no item is read: only its metadata. The dump is read as a
stream, line by line, and stops at ``max_items`` or ``deadline_s`` (the
connection is then closed, which ends the crawl on the server's side).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

# memcached 1.6's item header with CAS (48 bytes, 8 of CAS), the key's NUL and the value's CRLF: an item's
# ``size`` less its key and this is its value (measured on 1.6.18: size - key - 59 for every value size)
ITEM_OVERHEAD_CAS = 59
ITEM_OVERHEAD_NO_CAS = ITEM_OVERHEAD_CAS - 8


class CrawlerError(Exception):
    """The server cannot be crawled (its crawler is off, or it refused): the message says what to do."""


@dataclass(frozen=True)
class Item:
    """One item's metadata: key length, value length, and its TTL left in seconds (None: never expires)."""

    key_size: int
    value_size: int
    ttl_s: int | None


def server_stats(host: str, port: int, timeout: float, group: str = "") -> dict[str, str]:
    """``stats [group]`` over the text protocol, as strings."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(f"stats {group}".strip().encode() + b"\r\n")
        lines = _lines(sock, time.monotonic() + timeout)
        stats: dict[str, str] = {}
        for line in lines:
            if line == b"END":
                return stats
            parts = line.decode(errors="replace").split(" ", 2)
            if parts[0] != "STAT" or len(parts) < 3:
                raise CrawlerError(f"stats at {host}:{port}: unexpected reply {line[:80]!r}")
            stats[parts[1]] = parts[2]
    raise CrawlerError(f"stats at {host}:{port}: the reply ended early")


def crawl(host: str, port: int, timeout: float, max_items: int, deadline_s: float) -> Iterator[Item]:
    """The server's items (at most ``max_items``, for at most ``deadline_s``), from its LRU crawler."""
    settings = server_stats(host, port, timeout, "settings")
    if settings.get("lru_crawler") != "yes":
        raise CrawlerError(
            f"the LRU crawler of {host}:{port} is off, and reading its items needs it: start memcached with "
            "-o lru_crawler, or turn it on with the command 'lru_crawler enable' (this tool changes nothing)"
        )
    overhead = ITEM_OVERHEAD_CAS if settings.get("cas_enabled", "yes") == "yes" else ITEM_OVERHEAD_NO_CAS
    now = int(server_stats(host, port, timeout)["time"])  # (the server's clock: TTLs are on it)
    deadline = time.monotonic() + deadline_s
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(b"lru_crawler metadump all\r\n")
        count = 0
        for line in _lines(sock, deadline):
            if line == b"END":
                return
            if line.startswith((b"BUSY", b"ERROR", b"CLIENT_ERROR", b"SERVER_ERROR")):
                raise CrawlerError(f"lru_crawler metadump at {host}:{port}: {line.decode(errors='replace')}")
            item = _item(line, overhead, now)
            if item is None:
                continue
            yield item
            count += 1
            if count >= max_items:
                return


def _item(line: bytes, overhead: int, now: int) -> Item | None:
    fields = dict(part.split(b"=", 1) for part in line.split(b" ") if b"=" in part)
    try:
        key = unquote_to_bytes(fields[b"key"])
        size = int(fields[b"size"])
        expires = int(fields[b"exp"])
    except (KeyError, ValueError):
        return None
    ttl = None if expires <= 0 else max(0, expires - now)
    return Item(len(key), max(0, size - len(key) - overhead), ttl)


def _lines(sock: socket.socket, deadline: float) -> Iterator[bytes]:
    """The reply's lines as they come (without their line end), until ``deadline`` (monotonic) passes."""
    buffer = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        sock.settimeout(min(remaining, 5.0))
        try:
            chunk = sock.recv(1 << 16)
        except TimeoutError:
            continue
        if not chunk:
            return
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")  # (metadump ends its lines with LF alone, its END with CRLF)
        for line in complete:
            yield line.rstrip(b"\r")

"""One memcached endpoint: host, port, and how to reach it (TLS context, SASL credentials).

Plain data, shared by every layer that talks to a server; opening connections
to it is the engine's business (``engine.connect``).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

from pytest_memaslap.memcached.sasl import SaslCredentials


@dataclass(frozen=True)
class Target:
    """The memcached server a shard sends its load to (over TLS when ``tls`` is a context; logged in with ``sasl``)."""

    host: str
    port: int
    tls: ssl.SSLContext | None = None
    sasl: SaslCredentials | None = None

    def connect_args(self) -> dict[str, Any]:
        """Keyword arguments for ``loop.create_connection`` / ``asyncio.open_connection``."""
        if self.tls is None:
            return {"host": self.host, "port": self.port}
        return {"host": self.host, "port": self.port, "ssl": self.tls, "server_hostname": self.host}

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

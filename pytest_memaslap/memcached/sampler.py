"""The server's side of a run: its ``stats`` sampled once a second, from a thread, on connections of its own.

The load's event loop never waits for a sample: the sampler is a thread
with blocking control clients (one per server), and what it keeps is a list
of (wall time, counters) per server, read once the run is over. A server
that stops answering its stats is sampled no more (the run goes on, and the
section says so); every wait is bounded by the client's timeout.

Behind twemproxy (``proxy=``, its stats port): the proxy's own document is
read with every sample, and the servers sampled are its backends that it
names by address and that answer (the proxy itself answers no ``stats``).
"""

from __future__ import annotations

import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from pymemcache.exceptions import MemcacheError

from pytest_memaslap.memcached.control import control_client
from pytest_memaslap.memcached.proxy import ProxyStatsError, backend_address, backends, read_proxy_stats
from pytest_memaslap.memcached.sasl import SaslCredentials, SaslError
from pytest_memaslap.stats.proxy import Reading, forwarded, proxy_section, reading
from pytest_memaslap.stats.server import REQUEST_COUNTERS, server_section

INTERVAL_S = 1.0
CLIENT_TIMEOUT_S = 2.0
JOIN_TIMEOUT_S = 5.0
SETTLE_WAIT_S = 3.0  # after the call, how long a proxy's counters may take to stop moving
SETTLE_STEP_S = 0.05  # after a poke: the proxy's loop hands its counters over at once
# what is kept of each sample: the counters whose growth says what the server did (its requests, as
# ``stats.server`` counts them, and the rest), and the gauges
COUNTERS = REQUEST_COUNTERS + (
    "get_hits",
    "get_misses",
    "cas_hits",
    "cas_misses",
    "cas_badval",
    "evictions",
    "bytes_read",
    "bytes_written",
    "rusage_user",
    "rusage_system",
)
GAUGES = ("curr_connections", "curr_items", "bytes")
SETTINGS = ("maxbytes", "maxconns", "num_threads", "item_size_max", "lru_crawler", "cas_enabled")
# one pass of C over the reply picks the stats kept: the thread holds the GIL (and so the load's loop) least
_KEPT = re.compile(rb"STAT (" + b"|".join(name.encode() for name in COUNTERS + GAUGES) + rb") ([0-9.]+)\r\n")
_END = b"END\r\n"


@dataclass
class ServerSamples:
    """One server's samples: (wall time, {stat: value}) in time order, its settings, and why sampling stopped."""

    server: str
    settings: dict[str, Any] = field(default_factory=dict)
    samples: list[tuple[float, dict[str, float]]] = field(default_factory=list)
    error: str | None = None


@dataclass
class ProxySamples:
    """A proxy's stats documents, read with the servers' samples, and why reading them stopped."""

    address: str
    readings: list[Reading] = field(default_factory=list)
    about: dict[str, Any] = field(default_factory=dict)  # its service and version
    error: str | None = None
    started_at: float = 0.0  # the wall-clock window of the call
    ended_at: float = 0.0
    settled: bool = False  # its counters read after the call hold all of it


class StatsSampler:
    """Samples every server of a run once a second until ``stop``; ``start`` and ``stop`` take one each."""

    def __init__(
        self,
        servers: list[tuple[str, int]],
        tls: ssl.SSLContext | None = None,
        sasl: SaslCredentials | None = None,
        interval_s: float = INTERVAL_S,
        proxy: tuple[str, int] | None = None,
    ) -> None:
        self.interval_s = interval_s
        self.proxy = ProxySamples(_address(*proxy)) if proxy is not None else None
        self._proxy_at = proxy
        unsampled: list[ServerSamples] = []
        self._listening = list(servers)  # (behind a proxy: where it listens, poked to publish its counters)
        if proxy is not None:  # (the servers are the proxy's backends; the run's TLS and SASL are the proxy's)
            servers, unsampled, tls, sasl = *self._backends(proxy), None, None
        self.servers = [ServerSamples(_address(host, port)) for host, port in servers]
        self._clients = [control_client(host, port, CLIENT_TIMEOUT_S, tls, sasl) for host, port in servers]
        # the samples themselves: a plain text-protocol connection where there is no SASL (binary only)
        self._fast = [TextStats(host, port, tls) if sasl is None else None for host, port in servers]
        self.unsampled = unsampled
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def _backends(self, proxy: tuple[str, int]) -> tuple[list[tuple[str, int]], list[ServerSamples]]:
        """The proxy's backends named by address (sampled), and the others (each with why not)."""
        assert self.proxy is not None
        try:
            document = read_proxy_stats(*proxy, CLIENT_TIMEOUT_S)
        except ProxyStatsError as exc:
            self.proxy.error = f"stats port: {exc}"
            return [], []
        self.proxy.about = {key: document[key] for key in ("service", "version") if key in document}
        addresses, others = [], []
        for pool, name in backends(document):
            address = backend_address(name)
            if address is None:
                why = f"pool {pool}: the proxy names this backend {name!r}, not HOST:PORT: not sampled"
                others.append(ServerSamples(name, error=why))
            elif address not in addresses:
                addresses.append(address)
        return addresses, others

    def start(self) -> None:
        """The settings and a first sample of every server (before the run), then one a second in a thread."""
        if self.proxy is not None:
            self._settle_proxy()  # (its first reading holds everything before the call)
            self.proxy.started_at = time.time()
        for server, client in zip(self.servers, self._clients, strict=True):
            try:
                settings = client.stats("settings")
                server.settings = {k: _plain(settings[k.encode()]) for k in SETTINGS if k.encode() in settings}
            except (OSError, MemcacheError, SaslError) as exc:
                server.error = f"stats settings: {exc}"
        self._sample()
        self._thread = threading.Thread(target=self._run, name="pytest-memaslap stats sampler", daemon=True)
        self._thread.start()

    def stop(self) -> list[ServerSamples]:
        """A last sample of every server (after the run), and the samples of all."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(JOIN_TIMEOUT_S)
        self._sample(proxy=self.proxy is None)
        if self.proxy is not None:
            self.proxy.ended_at = time.time()
            self.proxy.settled = self._settle_proxy()  # (its last reading holds the whole call)
        for client in [*self._clients, *filter(None, self._fast)]:
            try:
                client.close()
            except (OSError, MemcacheError):
                pass
        return self.servers + self.unsampled

    def section(self, measured: tuple[float, float]) -> dict[str, Any]:
        """The ``server`` section of the call (once stopped), over the ``measured`` phase's wall-clock window."""
        servers = [(s.server, s.settings, s.samples, s.error) for s in self.servers + self.unsampled]
        proxy = None
        if self.proxy is not None:
            window = (self.proxy.started_at, self.proxy.ended_at)
            proxy = proxy_section(self.proxy.address, self.proxy.readings, window, self.proxy.settled,
                                  self.proxy.about, self.proxy.error)  # fmt: skip
        return server_section(servers, measured, proxy)

    def _settle_proxy(self) -> bool:
        """One reading of the proxy that holds everything done so far, when it comes in time; whether it did.

        twemproxy's event loop hands its counters to the stats thread after
        handling an event, once the thread has published the previous ones
        (which a read makes it do); an idle proxy hands nothing over. So each
        read is followed by a poke (a connection opened and closed on its
        listening port: an event), and the counters are whole when a read
        after a poke finds the forwarded requests unchanged. Only that last
        reading is kept.
        """
        assert self.proxy is not None
        deadline = time.monotonic() + SETTLE_WAIT_S
        last = self._read_proxy()
        while last is not None and time.monotonic() < deadline:
            self._poke()
            time.sleep(SETTLE_STEP_S)
            now = self._read_proxy()
            if now is None:
                break
            if forwarded(now[1]) == forwarded(last[1]):
                self.proxy.readings.append(now)
                return True
            last = now
        if last is not None:
            self.proxy.readings.append(last)
        return False

    def _poke(self) -> None:
        for host, port in self._listening:
            try:
                socket.create_connection((host, port), timeout=CLIENT_TIMEOUT_S).close()
            except OSError:
                pass  # (a proxy that is gone: its stats port says so on the next read)

    def _run(self) -> None:
        next_at = time.monotonic() + self.interval_s
        while not self._stopping.wait(max(0.0, next_at - time.monotonic())):
            self._sample()
            next_at += self.interval_s

    def _read_proxy(self) -> Reading | None:
        """The proxy's counters now (None, and its error kept, when its stats port fails)."""
        assert self.proxy is not None and self._proxy_at is not None
        if self.proxy.error is not None:
            return None
        try:
            return time.time(), reading(read_proxy_stats(*self._proxy_at, CLIENT_TIMEOUT_S))
        except (ProxyStatsError, KeyError, ValueError) as exc:
            self.proxy.error = f"stats port: {exc}"
            return None

    def _sample(self, proxy: bool = True) -> None:
        if proxy and self.proxy is not None and (now := self._read_proxy()) is not None:
            self.proxy.readings.append(now)
        for server, client, fast in zip(self.servers, self._clients, self._fast, strict=True):
            if server.error is not None and (server.samples or server.error.startswith("stats:")):
                continue  # (a server that stopped answering is sampled no more)
            try:
                if fast is not None:
                    values = fast.sample()
                else:
                    stats = client.stats()
                    values = {n: float(stats[n.encode()]) for n in COUNTERS + GAUGES if n.encode() in stats}
            except (OSError, MemcacheError, SaslError, ValueError) as exc:
                server.error = f"stats: {exc}"
                continue
            server.samples.append((time.time(), values))


class TextStats:
    """``stats`` over a text-protocol connection of its own, parsed by one regular expression (little GIL)."""

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None) -> None:
        self.host, self.port, self.tls = host, port, tls
        self.sock: socket.socket | None = None

    def sample(self) -> dict[str, float]:
        if self.sock is None:
            sock = socket.create_connection((self.host, self.port), timeout=CLIENT_TIMEOUT_S)
            self.sock = self.tls.wrap_socket(sock, server_hostname=self.host) if self.tls is not None else sock
        sock = self.sock
        try:
            sock.sendall(b"stats\r\n")
            reply = b""
            while not reply.endswith(_END):
                chunk = sock.recv(1 << 16)
                if not chunk:
                    raise OSError("the server closed the connection")
                reply += chunk
        except BaseException:
            self.close()
            raise
        return {name.decode(): float(value) for name, value in _KEPT.findall(reply)}

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _plain(value: Any) -> Any:
    """A setting as JSON takes it: bytes become text, numbers stay numbers."""
    if isinstance(value, bytes):
        text = value.decode(errors="replace")
        return int(text) if text.isdigit() else text
    return value

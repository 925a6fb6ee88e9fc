"""memcached servers: start and stop a real one, or use an existing one; read its stats.

A server the plugin starts listens on 127.0.0.1 only with UDP off (memcached's
UDP port has been used for reflection attacks), dies with the process that
started it (PR_SET_PDEATHSIG on Linux, plus an atexit hook), and is stopped with
SIGTERM, then SIGKILL after a bound, and reaped. A server the plugin did not
start is never flushed unless the user allows it.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_memaslap.memcached.sasl import SaslCredentials, SaslError

if TYPE_CHECKING:  # (the plugin loads this module at start-up; the clients load when a server is used)
    import ssl

    from pymemcache.client.base import Client

    from pytest_memaslap.memcached.control import BinaryClient

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
PORT_ATTEMPTS = 5
INSTALL_HINT = (
    "install memcached (Debian/Ubuntu: `sudo apt-get install memcached`; macOS: `brew install memcached`), "
    "pass --memcached-bin=PATH, or point at a running server with --memcached=HOST:PORT"
)
VERSION_REPLY_MAX = 4096  # a longer answer to `version` without a line end is not memcached
SASL_HINT = "a server started with -S answers nothing but authenticated binary requests: pass --memcached-sasl-user"


class ServerError(RuntimeError):
    """memcached could not be started, reached or used as asked."""


@dataclass(frozen=True)
class ServerConfig:
    """How to start memcached; two tests with equal configs share one server."""

    binary: str = "memcached"
    threads: int = 4
    memory_mb: int = 1024
    max_connections: int = 4096
    extra_args: tuple[str, ...] = ()
    udp: bool = False  # listen on UDP too (the TCP port's number), for transport="udp"; off by default

    def command(self, port: int) -> list[str]:
        args = [
            self.binary,
            "-l",
            "127.0.0.1",
            "-U",
            str(port) if self.udp else "0",
            "-p",
            str(port),
            "-t",
            str(self.threads),
            "-m",
            str(self.memory_mb),
            "-c",
            str(self.max_connections),
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            args += ["-u", "root"]  # memcached refuses root without -u; same user keeps PDEATHSIG
        return args + list(self.extra_args)


def format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_addresses(text: str) -> list[tuple[str, int]]:
    """``HOST:PORT[,HOST:PORT...]``: one server, or several for client-side hashing."""
    addresses = [parse_address(part) for part in text.split(",")]
    if len(set(addresses)) != len(addresses):
        raise ServerError(f"--memcached={text!r}: a server is listed twice")
    return addresses


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPv6]:PORT`` into (host, port), with a clear error otherwise."""
    value = text.strip()
    if value.startswith("["):
        host, sep, port = value[1:].partition("]:")
    else:
        host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ServerError(f"--memcached={text!r}: expected HOST:PORT, e.g. 127.0.0.1:11211 or [::1]:11211")
    return host, int(port)


def _parse_number(value: str) -> Any:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


@dataclass
class MemcachedServer:
    """A memcached server the tests talk to: host, port, version, stats and a client."""

    host: str
    port: int
    owned: bool
    allow_flush: bool = False
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    log_path: str | None = field(default=None, repr=False)
    version: str = ""
    # --memcached=A,B: every server of the run, this one first; the load spreads keys over them
    cluster: tuple[tuple[str, int], ...] = ()
    tls: ssl.SSLContext | None = field(default=None, repr=False)  # --memcached-tls: every connection speaks TLS
    udp: bool | None = None  # listens on UDP too (a server we started: we know; one given with --memcached: None)
    sasl: SaslCredentials | None = field(default=None, repr=False)  # --memcached-sasl-user: every connection logs in
    proxy_stats: tuple[str, int] | None = None  # --memcached-proxy-stats: a twemproxy's stats port (it has no stats)

    @property
    def address(self) -> str:
        return format_address(self.host, self.port)

    @property
    def servers(self) -> list[tuple[str, int]]:
        """(host, port) of every server the load goes to: this one, or the whole --memcached list."""
        return list(self.cluster) or [(self.host, self.port)]

    @property
    def spec(self) -> str:
        """The --memcached value naming every server of the run."""
        return ",".join(format_address(host, port) for host, port in self.servers)

    def client(self, timeout: float = 5.0) -> Client:
        """A pymemcache client for functional checks (not the load path); close it when done."""
        if self.sasl is not None:
            raise ServerError(
                f"memcached at {self.address} requires SASL, which pymemcache does not speak; "
                "use memcached_server.control() (stats, set, get_many, flush_all over the binary protocol)"
            )
        from pytest_memaslap.memcached.control import control_client

        return control_client(self.host, self.port, timeout, self.tls)

    def control(self, timeout: float = 5.0) -> Client | BinaryClient:
        """A client for the control paths (stats, flush, records), logged in when the server requires SASL."""
        from pytest_memaslap.memcached.control import control_client

        return control_client(self.host, self.port, timeout, self.tls, self.sasl)

    def _query(self, *args: str) -> dict[str, Any]:
        client = self.control()
        try:
            raw = client.stats(*args)
        finally:
            client.close()
        return {
            (k.decode() if isinstance(k, bytes) else str(k)): _parse_number(
                v.decode() if isinstance(v, bytes) else str(v)
            )
            for k, v in raw.items()
        }

    def stats(self, *args: str) -> dict[str, Any]:
        """``stats`` (or ``stats settings`` etc.) with numbers parsed."""
        return self._query(*args)

    def item_size_max(self) -> int | None:
        """The smallest ``item_size_max`` of the servers; None when none of them says (a proxy)."""
        limits = [item_size_limit(host, port, 5.0, tls, sasl) for host, port, tls, sasl in self.settings_sources()]
        known = [limit for limit in limits if limit is not None]
        return min(known) if known else None

    def memory_limit(self) -> int | None:
        """The bytes all the servers store at most (their ``-m`` summed); None when one of them does not say."""
        limits = [memory_limit(host, port, 5.0, tls, sasl) for host, port, tls, sasl in self.settings_sources()]
        if not limits or any(limit is None for limit in limits):
            return None
        return sum(limit or 0 for limit in limits)

    def settings_sources(self) -> list[tuple[str, int, ssl.SSLContext | None, SaslCredentials | None]]:
        """Whom to ask for ``stats settings``: the servers; behind a twemproxy (which closes the connection on
        it, an error in its counters) the backends it names by address, over plain connections."""
        if self.proxy_stats is None:
            return [(host, port, self.tls, self.sasl) for host, port in self.servers]
        from pytest_memaslap.memcached.proxy import ProxyStatsError, backend_address, backends, read_proxy_stats

        try:
            document = read_proxy_stats(*self.proxy_stats, 5.0)
        except ProxyStatsError:
            return []
        addresses = {backend_address(name) for _, name in backends(document)}
        return [(host, port, None, None) for host, port in sorted(filter(None, addresses))]

    def flush(self) -> None:
        """``flush_all``: only on a server the plugin started, or with --slap-allow-flush."""
        if not (self.owned or self.allow_flush):
            raise ServerError(
                f"refusing to flush memcached at {self.address}: the plugin did not start it "
                "(pass --slap-allow-flush to allow flushing an external server)"
            )
        client = self.control()
        try:
            # (waiting for its OK: pymemcache's default noreply returns at once, and the flush could then land
            # on another worker thread after whatever the caller does next, such as reading the counters)
            client.flush_all(noreply=False)
        finally:
            client.close()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a bound; always reaped, its log removed. A no-op for external servers."""
        self.end_process()
        self.remove_log()

    def end_process(self) -> None:
        """SIGTERM, then SIGKILL after a bound; always reaped."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_TIMEOUT_S)
        _running.discard(process)

    def remove_log(self) -> None:
        """The server's output file goes with it: nothing is left in the temporary folder."""
        if self.log_path:
            try:
                os.unlink(self.log_path)
            except FileNotFoundError:
                pass
            self.log_path = None

    def output(self) -> str:
        """What the server printed (its log), for error messages."""
        if not self.log_path:
            return ""
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""


_running: set[subprocess.Popen[bytes]] = set()


@atexit.register
def _kill_leftovers() -> None:
    for process in list(_running):
        if process.poll() is None:
            process.kill()
            process.wait()


def _die_with_parent() -> None:
    """Runs in the child before exec: the kernel sends SIGTERM when the parent dies."""
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def item_size_limit(
    host: str, port: int, timeout: float = 5.0, tls: ssl.SSLContext | None = None, sasl: SaslCredentials | None = None
) -> int | None:
    """The largest item a server stores (``stats settings``' ``item_size_max``); None when it does not say.

    A proxy may not know the command: twemproxy closes the connection, others
    answer ERROR. The load then runs unchecked, and values too large for the
    servers behind it count as errors of their command.
    """
    return server_stat(host, port, "settings", "item_size_max", timeout, tls, sasl)


def memory_limit(
    host: str, port: int, timeout: float = 5.0, tls: ssl.SSLContext | None = None, sasl: SaslCredentials | None = None
) -> int | None:
    """The bytes a server stores at most (``stats``' ``limit_maxbytes``, its ``-m``); None when it does not say."""
    return server_stat(host, port, "", "limit_maxbytes", timeout, tls, sasl)


def server_stat(
    host: str,
    port: int,
    section: str,
    name: str,
    timeout: float = 5.0,
    tls: ssl.SSLContext | None = None,
    sasl: SaslCredentials | None = None,
) -> int | None:
    """One whole-number statistic of ``stats SECTION``; None when the server (or a proxy) does not give it."""
    from pymemcache.exceptions import MemcacheError

    from pytest_memaslap.memcached.control import control_client

    client = control_client(host, port, timeout, tls, sasl)
    try:
        stats = client.stats(section) if section else client.stats()
    except (MemcacheError, OSError, SaslError):
        return None
    finally:
        client.close()
    value: Any = stats.get(name.encode(), stats.get(name))  # type: ignore[call-overload]
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def version_of(
    host: str, port: int, timeout: float, tls: ssl.SSLContext | None = None, sasl: SaslCredentials | None = None
) -> str:
    """One real request: ``version`` (over TLS with a context; logged in under SASL). OSError until it answers."""
    from pytest_memaslap.memcached.control import BinaryClient

    if sasl is not None:
        client = BinaryClient((host, port), sasl, timeout, tls)
        try:
            return client.version().decode(errors="replace")  # logs in first: a wrong password fails here
        except SaslError as exc:
            raise ServerError(str(exc)) from None
        finally:
            client.close()
    with socket.create_connection((host, port), timeout=timeout) as plain:
        sock = tls.wrap_socket(plain, server_hostname=host) if tls is not None else plain
        sock.sendall(b"version\r\n")
        reply = b""
        try:
            while not reply.endswith(b"\r\n") and len(reply) < VERSION_REPLY_MAX:
                chunk = sock.recv(4096)
                if not chunk:
                    raise ConnectionError("connection closed before the version reply")
                reply += chunk
        except TimeoutError:
            if not reply:
                raise  # (silent: maybe a SASL server, which answers only logged-in binary requests)
            reply += b"..."  # (something answered, but not a line: shown below as it is)
    if not reply.startswith(b"VERSION ") or not reply.endswith(b"\r\n"):
        raise ServerError(f"{host}:{port} answered {reply[:80]!r} to `version`: is it a memcached server?")
    return reply[8:].strip().decode(errors="replace")


def start_server(
    config: ServerConfig,
    tls: ssl.SSLContext | None = None,
    sasl: SaslCredentials | None = None,
    log_dir: str | None = None,
) -> MemcachedServer:
    """Start memcached on a free loopback port and wait (bounded) until it answers ``version``.

    ``tls``: the server was told to speak TLS (``-Z`` in its arguments); talk to it with this context.
    ``sasl``: the server was told to require SASL (``-S``); log in with these credentials.
    ``log_dir``: where its output goes (default: the system's temporary folder); removed with ``stop``.
    """
    binary = shutil.which(config.binary)
    if binary is None:
        raise ServerError(f"memcached binary {config.binary!r} not found: {INSTALL_HINT}")
    last_output = ""
    for _ in range(PORT_ATTEMPTS):
        port = free_port()
        log = tempfile.NamedTemporaryFile(prefix="pytest-memaslap-memcached-", suffix=".log", delete=False, dir=log_dir)
        command = config.command(port)
        command[0] = binary
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C in the terminal reaches pytest, which stops us in order
            preexec_fn=_die_with_parent,
        )
        log.close()
        _running.add(process)
        server = MemcachedServer(
            "127.0.0.1", port, owned=True, process=process, log_path=log.name, tls=tls, udp=config.udp, sasl=sasl
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                break
            try:
                server.version = version_of("127.0.0.1", port, timeout=1.0, tls=tls, sasl=sasl)
                return server
            except OSError:
                time.sleep(0.02)
        server.end_process()
        last_output = server.output()
        server.remove_log()
        if process.returncode is not None and "Address already in use" in last_output:
            continue  # another process took the port between our probe and memcached's bind
        status = (
            f"exited with status {process.returncode}"
            if process.returncode is not None and process.returncode >= 0
            else f"did not answer within {START_TIMEOUT_S:g} s"
        )
        raise ServerError(
            f"memcached {status}: {' '.join(command)}\n--- memcached output ---\n{last_output.strip() or '(none)'}"
        )
    raise ServerError(f"memcached could not bind a free port after {PORT_ATTEMPTS} attempts:\n{last_output}")


def connect_external(
    address: str,
    allow_flush: bool,
    timeout: float = 5.0,
    tls: ssl.SSLContext | None = None,
    sasl: SaslCredentials | None = None,
    proxy_stats: tuple[str, int] | None = None,
) -> MemcachedServer:
    """Use servers the plugin does not own (one, or a list); fails within ``timeout`` if one does not answer,
    or if the stats port of the proxy they are (``proxy_stats``) gives no document."""
    import ssl

    servers = parse_addresses(address)
    versions = []
    for host, port in servers:
        try:
            versions.append(version_of(host, port, timeout, tls, sasl))
        except ssl.SSLError as exc:
            raise ServerError(
                f"--memcached={address}: the TLS handshake with {format_address(host, port)} failed: "
                f"{exc.reason or exc} (see --memcached-tls-ca, --memcached-tls-cert)"
            ) from None
        except OSError as exc:
            raise ServerError(
                f"--memcached={address}: no memcached answers at {format_address(host, port)} "
                f"({exc.strerror or exc}); check the address, or drop --memcached to let the plugin start one"
                + ("" if sasl is not None or not isinstance(exc, TimeoutError) else f" ({SASL_HINT})")
            ) from None
    if proxy_stats is not None:
        from pytest_memaslap.memcached.proxy import ProxyStatsError, read_proxy_stats

        try:
            read_proxy_stats(*proxy_stats, timeout)
        except ProxyStatsError as exc:
            raise ServerError(
                f"--memcached-proxy-stats={format_address(*proxy_stats)}: no twemproxy stats there ({exc}); "
                "give the port nutcracker's -s names (22222 by default)"
            ) from None
    host, port = servers[0]
    cluster = tuple(servers) if len(servers) > 1 else ()
    return MemcachedServer(
        host,
        port,
        owned=False,
        allow_flush=allow_flush,
        version=versions[0],
        cluster=cluster,
        tls=tls,
        sasl=sasl,
        proxy_stats=proxy_stats,
    )


class ServerPool:
    """The servers of one session, one per configuration; all stopped at the end."""

    def __init__(
        self,
        external: str | None = None,
        allow_flush: bool = False,
        tls: ssl.SSLContext | None = None,
        sasl: SaslCredentials | None = None,
        log_dir: Callable[[], str | None] | None = None,
        proxy_stats: tuple[str, int] | None = None,
    ) -> None:
        """``log_dir``: asked once, at the first start, where the servers' output goes (pytest's basetemp)."""
        self.external = external
        self._log_dir = log_dir
        self.allow_flush = allow_flush
        self.tls = tls
        self.sasl = sasl
        self.proxy_stats = proxy_stats
        self._servers: dict[ServerConfig, MemcachedServer] = {}
        self._external: MemcachedServer | None = None
        self._failed: dict[ServerConfig, ServerError] = {}

    def get(self, config: ServerConfig) -> MemcachedServer:
        """The server for ``config``: started on first use; a failed start is not retried."""
        if self.external:
            if self._external is None:
                self._external = connect_external(
                    self.external, self.allow_flush, tls=self.tls, sasl=self.sasl, proxy_stats=self.proxy_stats
                )
            return self._external
        if config in self._failed:
            raise self._failed[config]
        if config not in self._servers:
            try:
                self._servers[config] = start_server(config, log_dir=self._log_dir() if self._log_dir else None)
            except ServerError as exc:
                self._failed[config] = exc
                raise
        return self._servers[config]

    def servers(self) -> list[MemcachedServer]:
        return list(self._servers.values()) + ([self._external] if self._external else [])

    def close(self, keep_logs: bool = False) -> list[str]:
        """Stop every server; their logs go too, unless ``keep_logs`` (a failed session). Returns the kept logs."""
        kept = []
        for server in self._servers.values():
            server.end_process()
            if keep_logs and server.log_path:
                kept.append(server.log_path)
            else:
                server.remove_log()
        self._servers.clear()
        return kept

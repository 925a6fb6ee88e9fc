"""One shard's run: connect, preload, warm up, measure, drain; every wait bounded.

A shard is one process's share of a workload. It owns a disjoint slice of the
keyspace and derives every RNG stream from (seed, shard index), so two runs of
the same plan send the same requests and shards never need to coordinate.
"""

from __future__ import annotations

import array
import asyncio
import random
import time
import warnings
from collections.abc import Awaitable, Sequence
from time import perf_counter_ns
from typing import Any

from pytest_memaslap.engine.barrier import ServerBarrier
from pytest_memaslap.engine.connect import connect
from pytest_memaslap.engine.errors import SlapRunError
from pytest_memaslap.engine.hot.connection import Connection, Slot, connection_class
from pytest_memaslap.engine.hot.recorder import RECEIVED, PhaseRecorder, kept_runs
from pytest_memaslap.engine.hot.requests import CleanupSource, OpSource, PreloadSource
from pytest_memaslap.engine.hot.slow import ExpiryBook, VerifyLog, expired_get_parser, verified_get_parser
from pytest_memaslap.engine.loop import LOOP_NAME, within
from pytest_memaslap.engine.placement import build_keyspace
from pytest_memaslap.engine.poll_interval import PollInterval
from pytest_memaslap.engine.probe import ProbeError, ProbeProcess
from pytest_memaslap.engine.shapes import Shape, shape_for
from pytest_memaslap.engine.shapes.base import Driver
from pytest_memaslap.engine.sources import SourcePlan, build_sources
from pytest_memaslap.engine.udp import UdpEndpoint
from pytest_memaslap.engine.watchdog import StallWatchdog, only_errors
from pytest_memaslap.memcached.endpoint import Target
from pytest_memaslap.memcached.sasl import SaslError
from pytest_memaslap.model.keyspace import ValueSource, counter_keys
from pytest_memaslap.model.shard_plan import ShardPlan
from pytest_memaslap.model.workload import COUNTER_COMMANDS, Workload
from pytest_memaslap.protocol.codecs import CODECS
from pytest_memaslap.protocol.outcomes import ERROR
from pytest_memaslap.stats.histogram import BUCKET_COUNT, Histogram
from pytest_memaslap.stats.live import CommandTotals, OnPreload, OnSecond
from pytest_memaslap.stats.results import Blocks, PhaseStats, ShardResult

PRELOAD_DEPTH = 16
UDP_LOSS_TIMEOUT_S = 1.0  # a UDP request unanswered this long is lost (an error); the run goes on
UDP_SWEEP_S = 0.05
RECONNECT_FIRST_DELAY_S = 0.01
RECONNECT_MAX_DELAY_S = 0.5
CLEANUP_AFTER_INTERRUPT_S = 5.0  # how long an interrupted run may spend deleting its keys (--slap-cleanup)
CANCEL_TIMEOUT_S = 1.0  # how long cancelled connection attempts may take to end
PROBE_START_S = 40.0  # how long the probe's process may take to start and connect
# a preload ends within this, or fails: at least PRELOAD_MIN_S, longer for keyspaces that need more at 1000 keys/s
PRELOAD_MIN_S = 120.0
PRELOAD_MIN_RATE = 1000.0


class ShardRunner:
    """Drives the connections of one shard through its phases."""

    def __init__(
        self,
        workload: Workload,
        target: Target | Sequence[Target],
        prefix: str,
        plan: ShardPlan,
        cleanup: bool = False,
        on_second: OnSecond | None = None,
        on_preload: OnPreload | None = None,
        shape: Shape | None = None,
    ) -> None:
        self.workload = workload
        self.shape = shape or shape_for(workload)  # what happens between the preload and the cleanup
        self.cleanup = cleanup
        self.on_second = on_second  # called with (seconds done, that second, totals) in the measured phase
        self.on_preload = on_preload  # called each second of the preload: how far it is
        self._preload_planned = 0  # the preload's requests, all connections
        # several servers: keys are placed as pymemcache's HashClient places them, connection i goes to server
        # i mod S and works on that server's keys only; the first server also holds the shards' barriers
        self.targets = [target] if isinstance(target, Target) else list(target)
        self.target = self.targets[0]
        self.server_ranges: list[range] = []
        self.prefix = prefix
        self.plan = plan
        self.recorder = PhaseRecorder(("set",), perf_counter_ns())
        self.slots: tuple[Slot, ...] = ()
        self.stopping = False
        self._tick_handle: asyncio.TimerHandle | None = None
        self._published = 0  # seconds of the current phase handed to on_second
        self.connections: list[Connection] = []
        self.connection_type = connection_class()  # the compiled core, or its pure-Python twin
        self.refill_blocks = array.array("Q", bytes(8 * BUCKET_COUNT))  # every connection's draws, in buckets
        self.result = ShardResult(implementation=self.connection_type.implementation, event_loop=LOOP_NAME)
        self._failure: asyncio.Future[str] | None = None  # a connection's failure: why the run must end
        self._watchdog: StallWatchdog | None = None
        self._phases: list[list[Any]] = []  # [name, recorder, end_ns or None]
        self.barrier: ServerBarrier | None = None
        self.partial: ShardResult | None = None  # set when the run is cancelled
        self._outages: dict[int, asyncio.Future[None]] = {}  # connection index -> its reconnect task
        self._down_since_ns = 0  # when the first of the connections now down went down
        self.counters: list[bytes] | None = None  # incr/decr's numeric keys, when the mix has them
        self.verify_log = VerifyLog()
        self.expiry = ExpiryBook()  # expire=: which keys must be gone, and when
        self.sources: list[OpSource] = []  # the measured phase's request sources, one per connection
        self._keyspace_material: tuple[list[bytes], int, ValueSource] | None = None  # (keys, first index, values)
        self.udp: list[UdpEndpoint] = []  # transport="udp": the measured load's sockets
        self._sweep_handle: asyncio.TimerHandle | None = None
        self.codec = CODECS[workload.protocol]
        self.probe: ProbeProcess | None = None  # probe_rate=: gets from a process of its own beside the load

    # -- called by connections ------------------------------------------------
    def connection_failed(self, connection: Connection, reason: str) -> None:
        if self._failure is not None and not self._failure.done():
            target = self._target_of(connection.index)
            hint = self._protocol_hint()
            if "Too many open connections" in reason:
                hint = (
                    f"; the server's connection table is full: memcached -c (its connection limit) must be above "
                    f"the connections this run opens ({self.workload.connections} per shard), with room for others"
                )
            self._failure.set_result(f"connection {connection.index} to {target}: {reason}{hint}")

    def _protocol_hint(self) -> str:
        """A run in meta or binary that never got a reply: the server (or a proxy) may not speak that protocol."""
        protocol = self.workload.protocol
        received = sum(c[RECEIVED] for _, recorder, _ in self._phases for c in recorder.counters)
        if protocol == "ascii" or received:
            return ""
        return (
            f"; no reply came back at all: does the server (or a proxy in front of it) speak protocol={protocol!r}? "
            "twemproxy speaks ascii only"
        )

    def connection_lost(self, connection: Connection, reason: str) -> None:
        """A connection dropped: reopen it (``reconnect=True``, memaslap's -R) or fail the run."""
        if not self.workload.reconnect:
            self.connection_failed(connection, reason)
            return
        connection.await_reconnect()
        if connection.index in self._outages:
            return  # lost again before its first reply: the reconnect under way goes on
        if not self._outages:  # the first connection down: the load's outage begins
            self._down_since_ns = perf_counter_ns()
        task = asyncio.ensure_future(self._reconnect(connection, reason))
        self._outages[connection.index] = task
        task.add_done_callback(lambda _: self._outage_over(connection.index))

    def _outage_over(self, index: int) -> None:
        """A connection is back (or given up): when it was the last one down, the outage's time is counted."""
        self._outages.pop(index, None)
        if not self._outages:
            self.result.reconnect_gap_s += (perf_counter_ns() - self._down_since_ns) / 1e9

    async def _reconnect(self, connection: Connection, reason: str) -> None:
        """Reopen with backoff until the server answers; gone for longer than ``timeout``, the run fails after all.

        A connection counts as back at its first reply, not at its connect: a
        dying server can still accept a connection and then reset it, and that
        is the same outage, not a second one.
        """
        deadline = perf_counter_ns() + int(self.workload.timeout * 1e9)
        delay = RECONNECT_FIRST_DELAY_S
        target = self._target_of(connection.index)
        while True:
            if self.stopping:
                connection.give_up()
                return
            try:
                await within(self.workload.timeout, connect(target, lambda: connection))
                restored = connection.resume()
                if restored is None or await within(max(deadline - perf_counter_ns(), 0) / 1e9, restored):
                    break
            except SaslError as exc:
                self.connection_failed(connection, f"{reason}; reconnecting: {exc}")
                return
            except (TimeoutError, OSError):
                pass
            if perf_counter_ns() > deadline:
                self.connection_failed(connection, f"{reason}; reconnecting failed for {self.workload.timeout:g} s")
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_DELAY_S)
        self.result.reconnects += 1

    # -- phases ---------------------------------------------------------------
    async def run(self) -> ShardResult:
        self._watch()
        workload, plan = self.workload, self.plan
        indices = plan.keys(workload) if workload.trace is None else range(0)  # (a replay's keys are the trace's)
        keys = await self._keyspace(indices, plan.rng(workload, "keys"))
        self._check_servers(plan.connections(workload))
        if any(name in COUNTER_COMMANDS for name in workload.command_names()):
            self.counters = counter_keys(keys)
        values = ValueSource(workload.value_size, random.Random(f"{workload.seed}:values"))
        if plan.count > 1:
            self.barrier = ServerBarrier(
                self.target, self.prefix, plan.index, plan.count, plan.sync_timeout, plan.call_off_key
            )
        poller = PollInterval(workload.poll_interval) if workload.poll_interval > 0 else None
        try:
            if poller is not None:
                poller.start()
            await self._connect(plan.connections(workload))
            if workload.probe_rate is not None:
                await self._start_probe(workload.probe_rate / plan.count)
            if workload.preloads:
                await self._sync("preload")
                await self._preload(keys, indices.start, values)
            await self._sync("load")
            self._keyspace_material = (keys, indices.start, values)
            await self.shape.load(self)
            if self.cleanup:
                await self._cleanup(keys)
        except SlapRunError as exc:
            for connection in self.connections:
                connection.fail_pending()
            for endpoint in self.udp:
                endpoint.fail_pending()
            exc.partial = self._finish_phases()
            if self.cleanup:  # (a failed run leaves no keys either, where it can still reach the server)
                await self._cleanup_on_fresh_connections(keys, "the failed run")
            raise
        except asyncio.CancelledError:
            # Ctrl-C / SIGTERM: keep what was measured (unanswered requests as errors), then stop
            for connection in self.connections:
                connection.fail_pending()
            for endpoint in self.udp:
                endpoint.fail_pending()
            self.partial = self._finish_phases()
            if self.cleanup:
                await self._cleanup_on_fresh_connections(keys, "the interrupt")
            raise
        finally:
            if poller is not None:
                poller.stop()
            for task in list(self._outages.values()):
                task.cancel()
            for connection in self.connections:
                connection.close()
            for endpoint in self.udp:
                endpoint.close()
            if self.probe is not None:
                self.probe.close()
        return self._finish_phases()

    async def _start_probe(self, rate: float) -> None:
        """The probe's process, started and connected before the load (off the loop: it takes a second)."""
        target = self.target
        if target.sasl is not None:
            raise SlapRunError("probe_rate: the probe does not log in with SASL; drop probe_rate with SASL servers")
        loop = asyncio.get_running_loop()
        seed = f"{self.workload.seed}:{self.plan.index}:probe"
        start = loop.run_in_executor(None, ProbeProcess, target.host, target.port, target.tls, rate, seed)
        try:
            self.probe = await within(PROBE_START_S, start)
        except (ProbeError, TimeoutError) as exc:
            raise SlapRunError(f"probe_rate: {exc or 'the probe process did not start'}") from None

    async def _sync(self, name: str) -> None:
        """Wait for the other shards of the plan (no-op for a single shard); a dropped connection ends the wait."""
        if self.barrier is not None:
            await self.wait(self.barrier.wait(name))

    def _check_servers(self, connections: int) -> None:
        """Several servers: each needs a connection of this shard, and keys of this shard to work on."""
        servers = len(self.targets)
        if servers == 1:
            return
        if connections < servers:
            raise SlapRunError(
                f"connections: this shard has {connections} connection(s) for {servers} servers; "
                f"use at least {servers * self.plan.count} connections (one per server per shard)"
            )
        empty = [str(self.targets[i]) for i, r in enumerate(self.server_ranges) if not len(r)]
        if empty and self.workload.trace is None:
            raise SlapRunError(
                f"keys={self.workload.keys}: no key of this shard maps to {', '.join(empty)}; use more keys"
            )

    def _target_of(self, index: int) -> Target:
        return self.targets[index % len(self.targets)]

    def _share(self, index: int) -> range:
        """The key positions connection ``index`` preloads or cleans up: its part of its server's keys."""
        servers = len(self.targets)
        keys = self.server_ranges[index % servers]
        peers = len(range(index % servers, len(self.connections), servers))
        return range(keys.start + index // servers, keys.stop, peers)

    async def _keyspace(self, indices: range, rng: random.Random) -> list[bytes]:
        keys, self.server_ranges = await build_keyspace(
            self.prefix, indices, self.workload.key_size, rng, [(t.host, t.port) for t in self.targets]
        )
        return keys

    async def _open(self, index: int) -> Connection:
        return await connect(self._target_of(index), lambda: self._connection(index))

    def _connection(self, index: int) -> Connection:
        connection = self.connection_type(self, index)
        connection.refill_blocks = self.refill_blocks
        return connection

    async def _connect(self, count: int) -> None:
        """Open every connection at once, within ``timeout``; on any failure none is left open and one error says why.

        Every attempt's outcome is collected (so asyncio reports no exception
        as "never retrieved"), and the connections that did open are closed.
        """
        if not count:
            return  # (a shard with no connection of its own)
        await self._resolve()
        tasks = [asyncio.ensure_future(self._open(i)) for i in range(count)]
        done, pending = await asyncio.wait(tasks, timeout=self.workload.timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=CANCEL_TIMEOUT_S)
        opened = [t.result() for t in tasks if t.done() and not t.cancelled() and t.exception() is None]
        errors = [t.exception() for t in tasks if t.done() and not t.cancelled() and t.exception() is not None]
        if not errors and not pending:
            self.connections = opened
            return
        for connection in opened:
            connection.close()
        error = errors[0] if errors else None
        if error is None:
            raise SlapRunError(
                f"cannot connect to memcached at {self.target}: no connection within {self.workload.timeout:g} s"
            )
        if isinstance(error, SaslError):
            raise SlapRunError(str(error))
        if isinstance(error, OSError):
            raise SlapRunError(f"cannot connect to memcached at {self.target}: {error.strerror or error}")
        raise error

    async def _resolve(self) -> None:
        """Look each server's name up once: a name that does not resolve is one error, not one per connection."""
        loop = asyncio.get_running_loop()
        for target in self.targets:
            try:
                await within(self.workload.timeout, loop.getaddrinfo(target.host, target.port))
            except (OSError, TimeoutError) as exc:
                why = getattr(exc, "strerror", None) or f"the name did not resolve within {self.workload.timeout:g} s"
                raise SlapRunError(f"cannot connect to memcached at {target}: {why}") from None

    async def _preload(self, keys: list[bytes], key_base: int, values: ValueSource) -> None:
        """Set every key of the slice once (in parallel over the connections) so gets hit."""
        self.start_phase("preload", ("set",))
        idle = []
        for i, connection in enumerate(self.connections):
            share = self._share(i)
            source = PreloadSource(keys, share, key_base, values, 0, self.counters, self.codec)
            idle.append(connection.begin(source, source.count, max(self.workload.window, PRELOAD_DEPTH)))
            self._preload_planned += source.count
        keys_here = sum(len(self._share(i)) for i in range(len(self.connections)))
        limit_s = max(PRELOAD_MIN_S, keys_here / PRELOAD_MIN_RATE)
        done = asyncio.gather(*idle)
        await self.wait(asyncio.shield(done), until_ns=perf_counter_ns() + int(limit_s * 1e9))
        if not done.done():
            self.stop(self.connections)
            answered = any(c[RECEIVED] for c in self.recorder.counters)
            raise SlapRunError(
                f"preload: not done within {limit_s:,.0f} s ({keys_here:,} keys on this shard, at least "
                f"{PRELOAD_MIN_RATE:,.0f} a second expected{'' if answered else '; no reply at all'}): the server "
                f"at {self.target} is too slow for this keyspace; use fewer keys, or preload=False"
            )
        self.end_phase("preload", perf_counter_ns())

    async def _cleanup(self, keys: list[bytes]) -> None:
        """Delete every key of the slice (the run's keys on a server the plugin does not own)."""
        self.start_phase("cleanup", ("delete",))
        idle = []
        for i, connection in enumerate(self.connections):
            share = self._share(i)
            fresh = self.sources[i].fresh_keys() if self.sources else []
            source = CleanupSource(keys, share, self.counters, self.codec, fresh)
            idle.append(connection.begin(source, source.count, PRELOAD_DEPTH))
        await self.wait(asyncio.gather(*idle))
        self.end_phase("cleanup", perf_counter_ns())

    async def _cleanup_on_fresh_connections(self, keys: list[bytes], after: str) -> None:
        """Interrupted or failed: delete the run's keys anyway, on fresh connections, within a bound; when it
        cannot, warn naming the prefix and how many keys may be left.

        The old connections may still carry replies to abandoned requests, so
        they are closed first. The partial result is already taken: these
        deletes are not in it.
        """
        count = len(self.connections)
        for connection in self.connections:
            connection.close()
        self.connections = []
        self._watch()
        self.stopping = False
        try:
            await within(CLEANUP_AFTER_INTERRUPT_S, self._connect_and_clean(count, keys))
        except (TimeoutError, SlapRunError, OSError) as exc:
            why = f"not done within {CLEANUP_AFTER_INTERRUPT_S:g} s" if isinstance(exc, asyncio.TimeoutError) else exc
            written = len(keys) + sum(len(source.fresh_keys()) for source in self.sources)
            warnings.warn(
                f"cleanup after {after}: {why}; up to {written:,} keys under the prefix {self.prefix!r} may be "
                "left on the server",
                stacklevel=1,
            )

    async def _connect_and_clean(self, count: int, keys: list[bytes]) -> None:
        await self._connect(count)
        await self._cleanup(keys)

    # -- what a shape uses (``shapes.base.Run``) ------------------------------------
    def build_sources(self) -> list[OpSource]:
        """The measured phase's request sources, one per connection (kept for cleanup's fresh keys)."""
        assert self._keyspace_material is not None, "sources before the keyspace"
        keys, key_base, values = self._keyspace_material
        self.sources = build_sources(
            SourcePlan(self.workload, self.plan, self.codec, self.prefix, self.verify_log, self.expiry),
            keys,
            key_base,
            values,
            self.server_ranges,
            self.counters,
            [connection.followups for connection in self.connections],
        )
        return self.sources

    async def open_drivers(self) -> list[Any]:
        """The connections; for ``transport="udp"`` one UDP socket each (the keyspace was preloaded over TCP)."""
        if self.workload.transport == "udp":
            self.udp = await self._open_udp(len(self.connections))
            return self.udp
        return self.connections

    def take_phase(self) -> PhaseStats:
        """End the current phase now and return its stats, apart from the run's phases (a capacity step)."""
        recorder: PhaseRecorder = self._phases.pop()[1]
        if self._tick_handle is not None:  # (no second closes into a finished phase)
            self._tick_handle.cancel()
            self._tick_handle = None
        return recorder.finish(perf_counter_ns())

    async def _open_udp(self, count: int) -> list[UdpEndpoint]:
        """One UDP socket per connection, each to its connection's server; losses are swept every 50 ms."""
        loop = asyncio.get_running_loop()
        loss_timeout = min(self.workload.timeout, UDP_LOSS_TIMEOUT_S)
        endpoints = []
        for i in range(count):
            target = self._target_of(i)
            endpoint = UdpEndpoint(self, i, loss_timeout)
            await loop.create_datagram_endpoint(lambda: endpoint, remote_addr=(target.host, target.port))  # noqa: B023
            endpoints.append(endpoint)
        self._sweep_udp()
        return endpoints

    def _sweep_udp(self) -> None:
        now = perf_counter_ns()
        for endpoint in self.udp:
            endpoint.sweep(now)
        self._sweep_handle = asyncio.get_running_loop().call_later(UDP_SWEEP_S, self._sweep_udp)

    # -- bookkeeping ------------------------------------------------------------
    def start_phase(self, name: str, names: tuple[str, ...]) -> PhaseRecorder:
        """Make ``name`` the phase new requests count in (replies count where they were sent)."""
        now = perf_counter_ns()
        self.recorder = PhaseRecorder(names, now, self.connection_type.take_run)
        slots: list[Slot] = [(self.codec.PARSERS[command], *self.recorder.slot(i)) for i, command in enumerate(names)]
        if "get" in names:  # verified gets and multi-gets: their own parsers, counted as gets
            get = self.recorder.slot(names.index("get"))
            slots += [
                (verified_get_parser(self.codec), *get),
                (self.codec.parse_multi_get, *get),
                (expired_get_parser(self.codec), *get),
            ]
        self.slots = tuple(slots)
        self.stopping = False
        for driver in [*self.connections, *self.udp]:
            driver.enter_phase(self.slots)
        self._phases.append([name, self.recorder, None])
        self._published = 0
        self._schedule_tick()
        if name == "measured" and self.probe is not None and self._keyspace_material is not None:
            self.probe.begin(self._keyspace_material[0])
        return self.recorder

    def stop(self, drivers: Sequence[Driver]) -> None:
        """The measured phase's time is up: every driver stops sending."""
        self.stopping = True
        for driver in drivers:
            driver.stop()

    def _schedule_tick(self) -> None:
        """Close the current phase's seconds on time, from a timer rather than per reply."""
        if self._tick_handle is not None:
            self._tick_handle.cancel()
        delay = max(0.0, (self.recorder.next_tick - perf_counter_ns()) / 1e9)
        self._tick_handle = asyncio.get_running_loop().call_later(delay, self._on_tick)

    def _on_tick(self) -> None:
        """A second ended: close it (one short step, see ``recorder``) and hand it to live progress.

        The whole tick is timed, in CPU time: what the loop did instead of replies once a second.
        """
        started = time.thread_time_ns()
        self.recorder.tick(perf_counter_ns())
        self._publish_seconds()
        self._schedule_tick()
        self.result.periodic["timeline_close"].record(time.thread_time_ns() - started)
        self._check_only_errors()

    def _check_only_errors(self) -> None:
        """End the run when every reply was an error for its timeout (see ``watchdog.only_errors``)."""
        if self._failure is None or self._failure.done():
            return
        why = only_errors(self.recorder.timeline, self.workload.timeout, self.target, self.workload.protocol)
        if why is not None:
            self._failure.set_result(why)

    def _publish_seconds(self) -> None:
        """Hand the measured phase's newly closed seconds to ``on_second`` (live progress), and the preload's
        progress to ``on_preload``."""
        recorder = self.recorder
        phase = self._phases[-1][0] if self._phases else None
        if self.on_preload is not None and phase == "preload" and self._published < len(recorder.timeline):
            self._published = len(recorder.timeline)
            totals = self._totals().values()
            answered, errors = sum(t.ops for t in totals), sum(t.errors for t in totals)
            self.on_preload(self._published, answered, self._preload_planned, errors)
        if self.on_second is not None and phase == "measured":
            while self._published < len(recorder.timeline):
                self._published += 1
                self.on_second(self._published, recorder.timeline[self._published - 1], self._totals)

    def _totals(self) -> dict[str, CommandTotals]:
        """The current phase's running totals per command (what a live exporter reads each second)."""
        return self.recorder.totals(self.connection_type.edge_counts)

    def _reply_bytes(self) -> int:
        """Grows with every reply of any phase (each reply has bytes): the stall watchdog's signal."""
        return sum(c[RECEIVED] + c[ERROR] for _, recorder, _ in self._phases for c in recorder.counters)

    def end_phase(self, name: str, end_ns: int) -> None:
        if name == "measured" and self.probe is not None:
            try:
                probed = self.probe.end()
            except ProbeError as exc:
                raise SlapRunError(f"probe_rate: {exc}") from None
            if probed is not None:
                self.result.phases["probe"] = probed
        for phase in self._phases:
            if phase[0] == name:
                phase[2] = end_ns

    def _finish_phases(self) -> ShardResult:
        """Build every phase's stats; call once no request is in flight any more."""
        if self._tick_handle is not None:
            self._tick_handle.cancel()
            self._tick_handle = None
        now = perf_counter_ns()
        for name, recorder, end_ns in self._phases:
            self.result.phases[name] = recorder.finish(end_ns if end_ns is not None else now)
            if name == "measured":
                self.result.latency_runs = kept_runs(recorder.runs)
        longest = max((connection.refill_max_ns for connection in self.connections), default=0)
        self.result.periodic["request_refill"].merge(Blocks(Histogram(self.refill_blocks.tolist()), longest))
        self._phases.clear()
        if self.barrier is not None:
            self.result.phases["sync"] = self.barrier.close()
        self.result.verify = self.verify_log.to_dict()
        self.shape.keep(self.result)
        return self.result

    def _watch(self) -> None:
        """From here on, every wait ends when a connection fails or the server stalls (a new failure to wait on)."""
        self._failure = asyncio.get_running_loop().create_future()
        self._watchdog = StallWatchdog(
            self.target,
            self.workload.timeout,
            self._failure,
            self._reply_bytes,
            lambda: self.connections,
            self.result.periodic["stall_watchdog"],
        )

    async def wait(self, awaitable: Awaitable[Any], until_ns: int | None = None) -> None:
        """Wait for ``awaitable`` (until ``until_ns`` at most), watched: see ``watchdog``."""
        assert self._watchdog is not None, "a wait before the run began"
        await self._watchdog.wait(awaitable, until_ns)

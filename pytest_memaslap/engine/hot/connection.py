"""A load connection: the hot core (compiled, or its pure-Python twin) with the lifecycle both share.

The per-request work lives in ``ConnectionCore`` (``_core.pyx`` compiled,
``core.py`` in Python, the same behaviour); this module adds what happens a
few times a run: the connection is made, lost, reopened, started on a phase,
closed. Which core a run uses is ``connection_class()``: the compiled one when
it is built, unless ``PYTEST_MEMASLAP_NO_EXTENSIONS`` is set.
"""

from __future__ import annotations

import array
import asyncio
from collections.abc import Callable
from time import perf_counter_ns
from typing import TYPE_CHECKING, Any, Protocol

from pytest_memaslap import hotpath
from pytest_memaslap.engine.hot import core, recorder
from pytest_memaslap.engine.hot.core import REFILL
from pytest_memaslap.engine.hot.recorder import LOST

__all__ = ["REFILL", "Connection", "ConnectionEvents", "Driven", "RequestSource", "Slot"]

Parser = Callable[[Any, int, Any], tuple[int, int]]
# (reply parser, phase counters, phase latencies) of one command, and the phase's histogram of this second
# (parser, counters, latencies, second, runs): the recorder's arrays (strings: array takes no [] at run time)
Slot = tuple[Parser, "array.array[int]", "array.array[int]", "array.array[int]", "array.array[int]"]


class RequestSource(Protocol):
    def batch(self, count: int) -> list[tuple[int, bytes, Any]]: ...


class ConnectionEvents(Protocol):
    """What a connection tells its runner; the runner's state flows the other way, pushed in by method calls."""

    def connection_failed(self, connection: Any, reason: str) -> None: ...

    def connection_lost(self, connection: Any, reason: str) -> None: ...


class Driven:
    """The state a runner pushes into a load driver (a TCP connection or a UDP socket); never read back."""

    slots: tuple[Slot, ...] = ()  # the current phase's slots, by command id
    stopping = False  # the runner said stop: replies trigger nothing more
    budget = -1  # requests this driver may still send (-1: no limit)

    def enter_phase(self, slots: tuple[Slot, ...]) -> None:
        """New requests count in these slots (replies count in the slot their request was sent with)."""
        self.slots = slots
        self.stopping = False

    def stop(self) -> None:
        """Send nothing more; the driver goes idle once its last reply is in."""
        self.stopping = True

    def set_budget(self, budget: int) -> None:
        """From now on send at most ``budget`` more requests (-1: no limit)."""
        self.budget = budget


class Lifecycle(Driven, asyncio.Protocol):
    """A closed-loop (optionally pipelined) load connection's life: made, begun, lost, reopened, closed.

    Mixed in after a ``ConnectionCore``, whose attributes and hot methods it uses.
    """

    if TYPE_CHECKING:  # what the core provides (``core.ConnectionCore``, or the compiled one)
        events: ConnectionEvents
        index: int
        transport: Any
        buffer: bytearray
        idle: asyncio.Future[None] | None
        depth: int
        closed: bool
        reconnecting: bool
        restored: asyncio.Future[bool] | None
        paced: bool
        followups: list[tuple[int, bytes]]
        refill_max_ns: int
        refill_blocks: array.array[int] | None
        implementation: str  # "compiled" or "python"

        @staticmethod
        def edge_counts(latencies: Any, cuts: tuple[int, ...]) -> tuple[list[int], int]: ...  # the core's

        @staticmethod
        def take_run(second: Any) -> tuple[int, Any, int]: ...  # the core's

        def __init__(self, events: ConnectionEvents, index: int) -> None: ...
        def track(self, slot: Slot, sent_ns: int, size: int, expect: Any = None) -> None: ...
        def in_flight(self) -> int: ...
        def data_received(self, data: bytes) -> None: ...
        def set_source(self, source: RequestSource) -> None: ...
        def send(self, count: int, now: int) -> None: ...
        def send_scheduled(self, due: list[int], now: int) -> int: ...
        def fail_pending(self, cause: int = ...) -> None: ...
        def give_up(self) -> None: ...

    # -- asyncio callbacks -------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed:
            return  # we closed it (``close``): the run is over
        self.closed = True
        restored = self.restored
        if restored is not None:  # reopened, and lost again before any reply: the outage goes on
            self.restored = None
            if not restored.done():  # (done: the runner stopped waiting)
                restored.set_result(False)
        why = f": {exc}" if exc else ""
        if self.in_flight() or (self.idle is not None and not self.idle.done()):
            lost = self.in_flight()
            self.fail_pending(LOST)
            reason = f"server closed the connection{why} ({lost} request{'s' if lost != 1 else ''} unanswered)"
        else:  # between phases: the next phase must not start on a dead connection and count nothing
            reason = f"server closed the idle connection{why}"
        self.events.connection_lost(self, reason)

    # -- driven by the runner ------------------------------------------------
    def await_reconnect(self) -> None:
        """The runner is reopening this closed connection: hold sends until ``resume``."""
        self.reconnecting = True

    def begin(self, source: RequestSource, budget: int, depth: int, paced: bool = False) -> asyncio.Future[None]:
        """Start sending from ``source``: ``depth`` requests in flight, ``budget`` in all (-1: no limit).

        ``paced``: open loop; nothing is sent until the pacer calls ``send_scheduled``.
        """
        loop = asyncio.get_running_loop()
        idle: asyncio.Future[None] = loop.create_future()
        self.idle = idle
        self.set_source(source)
        self.budget = budget
        self.depth = depth
        self.paced = paced
        if not paced:
            self.send(depth, perf_counter_ns())
        elif budget == 0:
            self.give_up()
        return idle

    def resume(self) -> asyncio.Future[bool] | None:
        """Go on after a reconnect (the new transport is already set): refill the window.

        Returns a future that tells whether the server answered (True) or the
        connection was lost before its first reply (False), when requests went
        out; None when nothing was sent (between phases, an exhausted budget,
        or paced: the pacer sends what fell due during the gap). A transport
        already reset is lost at once.
        """
        loop = asyncio.get_running_loop()
        if self.transport is None or self.transport.is_closing():  # reset between its connect and now
            lost: asyncio.Future[bool] = loop.create_future()
            lost.set_result(False)
            return lost
        self.closed = False
        self.reconnecting = False
        self.buffer.clear()
        active = self.idle is not None and not self.idle.done()  # (between phases: the next begin() sends)
        if active and not self.paced:
            self.restored = loop.create_future()
            self.send(self.depth, perf_counter_ns())
            if not self.in_flight():
                self.restored = None
        return self.restored

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()


class PythonConnection(core.ConnectionCore, Lifecycle):
    """A load connection on the pure-Python core."""

    implementation = "python"
    edge_counts = staticmethod(core.edge_counts)  # the live exporter's cut of a histogram, on the same core
    take_run = staticmethod(recorder.take_run)  # the close of a second, on the same core


def _compiled_class() -> type[Lifecycle] | None:
    """The connection class on the compiled core, or None where it was not built (or cannot load)."""
    try:
        from pytest_memaslap.engine.hot._core import ConnectionCore
        from pytest_memaslap.engine.hot._core import edge_counts as compiled_edge_counts
        from pytest_memaslap.engine.hot._core import take_run as compiled_take_run
    except ImportError:
        return None

    class CompiledConnection(ConnectionCore, Lifecycle):  # type: ignore[misc]
        """A load connection on the compiled core."""

        implementation = "compiled"
        edge_counts = staticmethod(compiled_edge_counts)
        take_run = staticmethod(compiled_take_run)

    return CompiledConnection


CompiledConnection = _compiled_class()


def connection_class() -> type[Lifecycle]:
    """The compiled connection when it is built and wanted, else the pure-Python twin."""
    if CompiledConnection is not None and hotpath.wanted():
        return CompiledConnection
    return PythonConnection


Connection = Lifecycle  # what the runner and the pacer hold, whichever core it has

"""The event loop the engine runs on: uvloop where it exists, asyncio's own otherwise."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from types import FrameType
from typing import Any, TypeVar

try:
    import uvloop
except ImportError:  # pragma: no cover - platforms without uvloop (Windows)
    uvloop = None  # type: ignore[assignment]

T = TypeVar("T")
STOP_TIMEOUT_S = 5.0
GRACE_S = 10.0  # after an interrupted run, further Ctrl-C are ignored this long, while its results are written

LOOP_NAME = "uvloop" if uvloop is not None else "asyncio"
LOOP_NOTE = (
    None
    if uvloop is not None
    else "uvloop is not available on this platform: the load runs on asyncio's default loop and is slower"
)


def new_event_loop() -> asyncio.AbstractEventLoop:
    if uvloop is not None:
        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


class _Run:
    """One engine run under way: where to cancel it, and whether an interrupt did."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.task = asyncio.current_task()
        self.interrupted = False

    def interrupt(self) -> None:
        """Cancel the run from any thread: the engine keeps what it measured and ends.

        Once: a second cancel would land in the bounded stop itself (the drain, the cleanup) and cut it short.
        """
        if self.task is not None and not self.interrupted:
            self.interrupted = True
            self.loop.call_soon_threadsafe(self.task.cancel)


_running: list[_Run] = []


def interrupt_running() -> bool:
    """Stop the engine's runs under way as Ctrl-C does (from a signal handler or any thread); False if none.

    SIGTERM comes here directly rather than through SIGINT: a process started
    in the background by a shell ignores SIGINT, and asyncio then installs no
    Ctrl-C handler, so re-raising SIGINT would do nothing.
    """
    for run in list(_running):
        run.interrupt()
    return bool(_running)


@contextlib.contextmanager
def first_interrupt_stops_the_run() -> Iterator[None]:
    """While a run is under way: the first Ctrl-C stops it (what it measured is kept), later ones are noted and
    ignored, because the stop is bounded (replies drained, keys deleted within seconds) and a second
    KeyboardInterrupt would cut it short and lose the result. Where Ctrl-C is ignored (a background job) or
    handled by someone else's handler, nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is not signal.default_int_handler:
        yield
        return
    count = 0

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        nonlocal count
        count += 1
        if count == 1:
            if not interrupt_running():
                raise KeyboardInterrupt()  # (no run yet: nothing to keep)
        elif count == 2:
            sys.stderr.write(
                "\npytest-memaslap: already stopping; what was measured is kept, and the stop takes seconds at most\n"
            )

    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        # interrupted: what follows (the caller reporting the partial result) gets a grace too
        signal.signal(signal.SIGINT, _grace(previous, GRACE_S) if count else previous)


def _grace(previous: Callable[[int, FrameType | None], Any], seconds: float) -> Callable[[int, FrameType | None], Any]:
    """A SIGINT handler that ignores Ctrl-C for ``seconds`` (the interrupted run's results are being written),
    then hands it to ``previous`` again."""
    until = time.monotonic() + seconds

    def on_sigint(signum: int, frame: FrameType | None) -> Any:
        if time.monotonic() >= until:
            signal.signal(signal.SIGINT, previous)
            return previous(signum, frame)
        return None

    return on_sigint


def run(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion on a fresh loop, also from inside a running loop.

    A test written with an async plugin already has a loop in this thread; the
    engine then runs on its own loop in a helper thread instead of failing.
    A run stopped by Ctrl-C or ``interrupt_running`` raises KeyboardInterrupt.
    """
    try:
        asyncio.get_running_loop()
        running = True
    except RuntimeError:
        running = False
    box: dict[str, Any] = {}

    async def tracked() -> T:
        box["run"] = this = _Run()
        _running.append(this)
        try:
            return await main()
        finally:
            _running.remove(this)

    if not running:  # (outside the except block: an error of the run is not chained to "no running event loop")
        with first_interrupt_stops_the_run(), asyncio.Runner(loop_factory=new_event_loop) as runner:
            try:
                return runner.run(tracked())
            except asyncio.CancelledError:
                if "run" in box and box["run"].interrupted:
                    raise KeyboardInterrupt() from None
                raise

    def target() -> None:
        try:
            with asyncio.Runner(loop_factory=new_event_loop) as runner:
                box["value"] = runner.run(tracked())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="pytest-memaslap-engine")
    thread.start()
    try:
        with first_interrupt_stops_the_run():
            while thread.is_alive():
                thread.join(0.1)  # short joins, so Ctrl-C reaches this (main) thread
    except KeyboardInterrupt:
        if "run" in box:  # stop the load in its own thread, then report the interruption
            box["run"].interrupt()
        thread.join(STOP_TIMEOUT_S)
        raise
    if "error" in box:
        error = box["error"]
        raise KeyboardInterrupt() if isinstance(error, asyncio.CancelledError) else error
    return box["value"]  # type: ignore[no-any-return]


async def within(seconds: float, awaitable: Awaitable[T]) -> T:
    """``await awaitable``, or ``TimeoutError`` after ``seconds``.

    In place of ``asyncio.wait_for``, which on Python 3.11 returns the result
    and drops a cancellation (Ctrl-C) that arrives as the awaited thing
    completes: the run would go on as if nothing had been asked.
    """
    async with asyncio.timeout(seconds):
        return await awaitable

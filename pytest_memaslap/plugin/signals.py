"""SIGTERM handled like Ctrl-C, so a CI runner's stop ends the load and stops servers in order; and the wrap-up
of an interrupted session, which further interrupts must not cut short."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from collections.abc import Iterator
from types import FrameType
from typing import Any


def _as_interrupt(signum: int, frame: FrameType | None) -> None:
    # A load under way is cancelled as Ctrl-C cancels it (its partial result kept); anywhere else, Ctrl-C's exception.
    # (Looked up, not imported: loading the plugin must not load asyncio and the engine, and no engine, no load.)
    engine_loop = sys.modules.get("pytest_memaslap.engine.loop")
    if engine_loop is None or not engine_loop.interrupt_running():
        raise KeyboardInterrupt()


def install_sigterm_handler() -> Any:
    """Handle SIGTERM as Ctrl-C if nobody else handles it; returns what to restore."""
    if threading.current_thread() is not threading.main_thread():
        return None
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return None
    return signal.signal(signal.SIGTERM, _as_interrupt)


def restore_sigterm_handler(previous: Any) -> None:
    if previous is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """An interrupted session's wrap-up (waiting, bounded, for the shards' partial results; writing the summary and
    the JSON): a second Ctrl-C or SIGTERM is noted and ignored, so the merged partial result is not lost."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    noted = False

    def note(signum: int, frame: FrameType | None) -> None:
        nonlocal noted
        if not noted:
            noted = True
            sys.stderr.write("\npytest-memaslap: writing what the interrupted run measured; it takes seconds at most\n")

    previous = {
        signum: signal.signal(signum, note)
        for signum in (signal.SIGINT, signal.SIGTERM)
        if signal.getsignal(signum) is not signal.SIG_IGN
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


_deferred_until_exit: contextlib.ExitStack | None = None  # (one session a process; pytester's run in turn)


def defer_interrupts_until_exit() -> None:
    """Defer further interrupts until ``restore_interrupts`` (at the session's very end: it ends in seconds)."""
    global _deferred_until_exit
    if _deferred_until_exit is None:
        _deferred_until_exit = contextlib.ExitStack()
        _deferred_until_exit.enter_context(interrupts_deferred())


def restore_interrupts() -> None:
    """The session is over: interrupts act as they did before it was interrupted."""
    global _deferred_until_exit
    if _deferred_until_exit is not None:
        _deferred_until_exit.close()
        _deferred_until_exit = None


GRACE_S = 15.0  # after a first interrupt, further ones are noted this long, then act again (a way out of a hang)


def install_first_interrupt_handler() -> Any:
    """For a process that runs no load (the xdist controller): the first Ctrl-C interrupts as always and defers
    the next ones for ``GRACE_S``, covering the whole wrap-up from the first moment; returns what to restore."""
    if threading.current_thread() is not threading.main_thread():
        return None
    previous = signal.getsignal(signal.SIGINT)
    if previous is not signal.default_int_handler:
        return None
    first: list[float] = []

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        if not first:
            first.append(time.monotonic())
            raise KeyboardInterrupt()
        if time.monotonic() - first[0] > GRACE_S:
            raise KeyboardInterrupt()
        if len(first) == 1:
            first.append(time.monotonic())
            sys.stderr.write("\npytest-memaslap: writing what the interrupted run measured; it takes seconds at most\n")

    signal.signal(signal.SIGINT, on_sigint)
    return previous


def restore_first_interrupt_handler(previous: Any) -> None:
    if previous is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, previous)

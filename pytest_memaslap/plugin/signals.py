"""SIGTERM handled like Ctrl-C, so a CI runner's stop ends the load and stops servers in order."""

from __future__ import annotations

import signal
import sys
import threading
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

"""The event loop the engine runs on: uvloop where it exists, asyncio's own otherwise."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

try:
    import uvloop
except ImportError:  # pragma: no cover - platforms without uvloop (Windows)
    uvloop = None  # type: ignore[assignment]

T = TypeVar("T")

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


def run(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion on a fresh loop, also from inside a running loop.

    A test written with an async plugin already has a loop in this thread; the
    engine then runs on its own loop in a helper thread instead of failing.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            return runner.run(main())
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            with asyncio.Runner(loop_factory=new_event_loop) as runner:
                box["value"] = runner.run(main())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="pytest-memaslap-engine")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]

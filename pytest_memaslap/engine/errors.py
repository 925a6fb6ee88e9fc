"""What the engine raises when a run cannot finish: an error, or an interruption."""

from __future__ import annotations

from pytest_memaslap.stats.results import ShardResult


class SlapInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) stopped the load; ``partial`` holds what was measured until then."""

    def __init__(self, partial: ShardResult | None) -> None:
        super().__init__()
        self.partial = partial


class SlapRunError(RuntimeError):
    """The load could not run or was cut short; ``partial`` holds what was measured."""

    def __init__(self, message: str, partial: ShardResult | None = None) -> None:
        super().__init__(message)
        self.partial = partial

"""The engine's one error type."""

from __future__ import annotations

from ..stats import ShardResult


class SlapRunError(RuntimeError):
    """The load could not run or was cut short; ``partial`` holds what was measured."""

    def __init__(self, message: str, partial: ShardResult | None = None) -> None:
        super().__init__(message)
        self.partial = partial

"""Live progress of long runs: a line every few seconds, like memaslap's -S."""

from __future__ import annotations

from collections.abc import Callable

from .stats import Histogram, Second


class ProgressPrinter:
    """Collects the measured phase's seconds and prints one line per ``every_s`` of them."""

    def __init__(self, write_line: Callable[[str], None], label: str, total_s: float | None, every_s: int) -> None:
        self.write_line = write_line
        self.label = label
        self.total = f"/{total_s:g}" if total_s else ""
        self.every = every_s
        self.seconds: list[Second] = []

    def __call__(self, done: int, second: Second) -> None:
        self.seconds.append(second)
        if done % self.every:
            return
        ops = sum(s.ops for s in self.seconds)
        errors = sum(s.errors for s in self.seconds)
        latency = Histogram()
        for s in self.seconds:
            for index, count in zip(s.indices, s.counts, strict=True):
                latency.counts[index] += count
        p99_ms = latency.percentile(99.0) / 1e6
        self.write_line(
            f"slap {self.label}: {done}{self.total} s, {ops / len(self.seconds):,.0f} ops/s, "
            f"p99 {p99_ms:.3g} ms, errors {errors} (last {len(self.seconds)} s)"
        )
        self.seconds = []


def stat_freq(option: int | None, duration: float | None) -> int:
    """Seconds between lines: the option when given (0 is off), else 5 s for runs of 10 s or more."""
    if option is not None:
        return option
    return 5 if duration is not None and duration >= 10 else 0

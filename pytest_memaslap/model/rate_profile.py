"""An open loop's rate over time: constant (``rate=``), or stages that ramp it linearly (``stages=``).

``stages=[("10s", "1k"), ("20s", "50k"), ("10s", "50k"), ("5s", "0")]`` ramps
from the starting rate (``rate=``, else 0) to 1k/s over 10 s, then to 50k/s
over 20 s, holds 50k/s for 10 s and ramps down to 0 over 5 s, as k6's
ramping arrival rate does. The pacer works in *request counts*: the
cumulative number of requests due by time t, ``requests_until(t)``, and its
inverse ``time_of(n)``; a Poisson or uniform schedule in count space becomes,
through the inverse, a schedule whose rate follows the profile exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property


@dataclass(frozen=True)
class RateProfile:
    """Piecewise-linear requests/s over seconds since the measured phase began (over all shards)."""

    start_rate: float
    stages: tuple[tuple[float, float], ...]  # (duration s, the rate at its end)

    @classmethod
    def constant(cls, rate: float) -> RateProfile:
        return cls(rate, ((math.inf, rate),))

    @property
    def duration_s(self) -> float:
        return sum(duration for duration, _ in self.stages)

    @cached_property
    def _segments(self) -> tuple[tuple[float, float, float, float], ...]:
        out, start, rate = [], 0.0, self.start_rate
        for duration, target in self.stages:
            out.append((start, start + duration, rate, target))
            start, rate = start + duration, target
        return tuple(out)

    def segments(self) -> tuple[tuple[float, float, float, float], ...]:
        """Each stage as (start s, end s, rate at start, rate at end)."""
        return self._segments

    def rate_at(self, t: float) -> float:
        for start, end, r0, r1 in self.segments():
            if t < end:
                return r0 if math.isinf(end) else r0 + (r1 - r0) * (t - start) / (end - start)
        return 0.0

    def requests_until(self, t: float) -> float:
        """Requests due from 0 to ``t`` seconds: the integral of the rate."""
        total = 0.0
        for start, end, r0, r1 in self.segments():
            if t <= start:
                break
            span = min(t, end) - start
            slope = 0.0 if math.isinf(end) else (r1 - r0) / (end - start)
            total += r0 * span + slope * span * span / 2
        return total

    def time_of(self, count: float) -> float:
        """The time at which ``count`` requests have become due (inf if they never do).

        Called once per request an open loop sends: a constant rate is one division.
        """
        segments = self._segments
        if len(segments) == 1 and math.isinf(segments[0][1]):
            return count / self.start_rate if self.start_rate > 0 else math.inf
        for start, end, r0, r1 in segments:
            duration = end - start
            slope = 0.0 if math.isinf(end) else (r1 - r0) / duration
            in_stage = math.inf if math.isinf(end) else r0 * duration + slope * duration * duration / 2
            if count <= in_stage:
                # solve r0*x + slope*x^2/2 = count for the first x >= 0 (the stable form of the quadratic root)
                disc = r0 * r0 + 2 * slope * count
                root = math.sqrt(max(disc, 0.0))
                x = 2 * count / (r0 + root) if r0 + root > 0 else math.inf
                return start + min(x, duration)
            count -= in_stage
        return math.inf

    def mean_rate(self, t0: float, t1: float) -> float:
        """Requests/s due on average from ``t0`` to ``t1``."""
        return (self.requests_until(t1) - self.requests_until(t0)) / (t1 - t0) if t1 > t0 else 0.0

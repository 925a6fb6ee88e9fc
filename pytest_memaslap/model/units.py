"""Units: one parser for durations, counts, rates and sizes, wherever a user writes one.

Marks, command-line options, ini keys, thresholds and ``memaslap-py`` all read
numbers here, so ``m`` means minutes in every duration and ``M`` millions in
every count. A lower-case ``m`` on a count or a rate is refused with a hint,
never silently read as milli or mega.
"""

from __future__ import annotations

import math
import re
from typing import Any

DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
COUNT_UNITS = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9}
_NUMBER_WITH_UNIT = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([A-Za-zµμ%]*)\s*$")
GREEK_MU, MICRO_SIGN = "\u03bc", "\u00b5"  # both are written for micro; the units table has the micro sign
_COUNT_HINTS = {"m": "use M for millions (m is minutes in durations)", "g": "use G for billions"}


class UnitError(ValueError):
    """A number with a unit that is malformed or not allowed here; the message names the value and the units."""


def split_number(text: str) -> tuple[float, str] | None:
    """``"2.5ms"`` -> ``(2.5, "ms")``; None when the text is not a number followed by letters."""
    match = _NUMBER_WITH_UNIT.match(text)
    return (float(match.group(1)), match.group(2).replace(GREEK_MU, MICRO_SIGN)) if match else None


def duration_factor(unit: str, what: str) -> float:
    """Seconds per ``unit``; raises naming ``what`` and the allowed units."""
    unit = unit.replace(GREEK_MU, MICRO_SIGN)
    if unit not in DURATION_UNITS:
        raise UnitError(f"{what}: unknown time unit {unit!r}; units: {', '.join(DURATION_UNITS)}")
    return DURATION_UNITS[unit]


def count_factor(unit: str, what: str) -> float:
    """The multiplier of a count suffix (k, M, G); raises naming ``what``, with a hint for ``m`` and ``g``."""
    if unit not in COUNT_UNITS:
        hint = _COUNT_HINTS.get(unit, "suffixes: k, M, G")
        raise UnitError(f"{what}: unknown count suffix {unit!r}; {hint}")
    return COUNT_UNITS[unit]


def parse_duration(value: Any, name: str = "duration") -> float:
    """Seconds from a number (seconds) or a string such as ``"10s"``, ``"500ms"``, ``"250us"``, ``"2m"``, ``"1h"``."""
    units = ", ".join(DURATION_UNITS)
    allowed = f"{name}={value!r}: expected a duration such as 10, '10s', '500ms' or '2m' (units: {units})"
    if isinstance(value, bool):
        raise UnitError(allowed)
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        parsed = split_number(value)
        if parsed is None or (parsed[1] or "s") not in DURATION_UNITS:
            raise UnitError(allowed)
        seconds = parsed[0] * DURATION_UNITS[parsed[1] or "s"]
    else:
        raise UnitError(allowed)
    if not math.isfinite(seconds) or seconds < 0:
        raise UnitError(f"{name}={value!r}: must be a finite, non-negative duration")
    return seconds


def parse_count(value: Any, name: str) -> int:
    """A whole number from an int or a string with a suffix (``"50k"``, ``"1M"``, ``"2G"``)."""
    allowed = f"{name}={value!r}: expected a whole number such as 1000 or '50k' (suffixes k, M, G)"
    if isinstance(value, bool):
        raise UnitError(allowed)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        parsed = split_number(value)
        if parsed is not None:
            number = parsed[0] * count_factor(parsed[1], f"{name}={value!r}")
            if number.is_integer():
                return int(number)
    raise UnitError(allowed)


def parse_rate(value: Any, name: str = "rate") -> float:
    """Per second, from a number or a string such as ``"40k"`` or ``"40k/s"``."""
    allowed = f"{name}={value!r}: expected requests per second such as 40000, '40k' or '40k/s'"
    if isinstance(value, bool):
        raise UnitError(allowed)
    if isinstance(value, (int, float)):
        rate = float(value)
    elif isinstance(value, str):
        parsed = split_number(value.strip().removesuffix("/s"))
        if parsed is None:
            raise UnitError(allowed)
        rate = parsed[0] * count_factor(parsed[1], f"{name}={value!r}")
    else:
        raise UnitError(allowed)
    if not math.isfinite(rate) or rate <= 0:
        raise UnitError(f"{name}={value!r}: must be more than 0 requests per second")
    return rate

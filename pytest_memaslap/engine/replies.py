"""What a reply parser reports, shared by the protocol codecs: an outcome, and what verification found."""

from __future__ import annotations

HIT = 0
MISS = 1
ERROR = 2


class VerifyLog:
    """What ``verify`` found: gets checked, values that differ from what was written, and some of their keys."""

    KEEP = 10

    def __init__(self) -> None:
        self.checked = 0
        self.mismatches = 0
        self.keys: list[str] = []

    def mismatch(self, key: bytes) -> None:
        self.mismatches += 1
        if len(self.keys) < self.KEEP:
            self.keys.append(key.decode("ascii", "replace"))

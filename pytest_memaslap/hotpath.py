"""Which hot path this installation runs: the compiled core, or its pure-Python twin.

Found without importing the engine (the report header asks in every session).
The compiled core is used when it was built and ``PYTEST_MEMASLAP_NO_EXTENSIONS``
is not set; otherwise the twin runs, with the same behaviour, more slowly.
"""

from __future__ import annotations

import os
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

NO_EXTENSIONS = "PYTEST_MEMASLAP_NO_EXTENSIONS"
_CORE = Path(__file__).resolve().parent / "engine" / "hot" / "_core"


def wanted() -> bool:
    """False when the user asked for the pure-Python twin (``PYTEST_MEMASLAP_NO_EXTENSIONS=1``)."""
    return os.environ.get(NO_EXTENSIONS, "") in ("", "0")


def built() -> bool:
    """Whether the compiled core is installed (built at install time, when a C compiler was there)."""
    return any(_CORE.with_name(_CORE.name + suffix).exists() for suffix in EXTENSION_SUFFIXES)


def describe() -> str:
    """``compiled``, or ``python`` and why: one line for the report header and ``memaslap-py``."""
    if not wanted():
        return f"python ({NO_EXTENSIONS} is set)"
    if not built():
        return "python (the compiled hot path is not built here: install with a C compiler for more load per core)"
    return "compiled"

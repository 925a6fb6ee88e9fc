"""Builds the compiled hot path (``engine/hot/_core.pyx``) and hiccup meter (``engine/_hiccups.pyx``) when it can.

Without a C compiler, or with ``PYTEST_MEMASLAP_NO_EXTENSIONS=1`` set, the
install still succeeds and the engine runs on the pure-Python twin
(``engine/hot/core.py``), which behaves the same, more slowly; the machine's
hiccups are then not measured.
"""

from __future__ import annotations

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

NO_EXTENSIONS = os.environ.get("PYTEST_MEMASLAP_NO_EXTENSIONS", "") not in ("", "0")


class OptionalBuildExt(build_ext):
    """A failed compile is a warning, not a failed install: the pure-Python twin takes over."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - no compiler, no headers: fall back
            self._fallback(exc)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001
            self._fallback(exc)

    @staticmethod
    def _fallback(exc: Exception) -> None:
        print(
            f"pytest-memaslap: the compiled hot path was not built ({exc}); the pure-Python engine will run",
            file=sys.stderr,
        )


def extensions() -> list[Extension]:
    if NO_EXTENSIONS:
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        print("pytest-memaslap: Cython is not installed; the pure-Python engine will run", file=sys.stderr)
        return []
    return cythonize(
        [
            Extension("pytest_memaslap.engine.hot._core", ["pytest_memaslap/engine/hot/_core.pyx"]),
            Extension("pytest_memaslap.engine._hiccups", ["pytest_memaslap/engine/_hiccups.pyx"]),
        ],
        language_level=3,
        quiet=True,
    )


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})

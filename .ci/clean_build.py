"""A clean build: Cython and the C compiler (``-Wall``) must say nothing about the compiled extensions.

Builds them from the sources in a temporary folder (the working tree's own
build is left as it is) and fails, naming each warning, on any line that
says "warning". Run by ``.ci/run``; needs Cython (the ``dev`` extra) and a C
compiler.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ["setup.py", "pyproject.toml", "README.md", "LICENSE", "pytest_memaslap"]
TIMEOUT_S = 600


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="pytest-memaslap-build-") as folder:
        for name in SOURCES:
            source = ROOT / name
            if source.is_dir():
                skipped = shutil.ignore_patterns("*.c", "*.so", "__pycache__")  # (built afresh)
                shutil.copytree(source, Path(folder) / name, ignore=skipped)
            else:
                shutil.copy2(source, Path(folder) / name)
        # (-O3: some warnings, -Wmaybe-uninitialized among them, come from the optimizer)
        env = {**os.environ, "CFLAGS": "-O3 -Wall", "PYTEST_MEMASLAP_NO_EXTENSIONS": ""}
        done = subprocess.run(
            [sys.executable, "setup.py", "build_ext", "--inplace"],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
        output = done.stdout + done.stderr
        built = list(Path(folder).glob("pytest_memaslap/**/*.so"))
    warnings = [line for line in output.splitlines() if "warning" in line.lower() and "Setuptools" not in line]
    if done.returncode != 0 or len(built) < 2:
        print(f"the extensions did not build ({done.returncode}; {len(built)} built):\n{output}", file=sys.stderr)
        return 1
    if warnings:
        print("the build is not clean:\n" + "\n".join(warnings), file=sys.stderr)
        return 1
    print(f"clean build: {len(built)} extensions, no Cython or compiler warning (-Wall)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Writing output files: atomically, so a reader never sees half a file."""

from __future__ import annotations

import json
import os
from typing import Any


def write_json(path: str, document: dict[str, Any]) -> None:
    write_text(path, json.dumps(document, indent=2, sort_keys=False) + "\n")


def write_text(path: str, text: str) -> None:
    """Write atomically, so a reader never sees half a file."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)

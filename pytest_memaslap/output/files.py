"""Writing output files: checked before any load, written atomically, nothing left behind on failure."""

from __future__ import annotations

import json
import os
import secrets
from typing import Any

TRIES = 100  # names to try for a temporary file before giving up (each a fresh random one)


def write_json(path: str, document: dict[str, Any]) -> None:
    write_text(path, json.dumps(document, indent=2, sort_keys=False) + "\n")


def write_text(path: str, text: str) -> None:
    """Write atomically, so a reader never sees half a file; a failed write leaves no temporary file.

    Only a regular file (or a new one) is replaced atomically. A symbolic link
    (``/dev/stdout``), a device or a pipe is written through: replacing it
    would put a regular file in its place.
    """
    if os.path.islink(path) or (os.path.exists(path) and not os.path.isfile(path)):
        with open(path, "w", encoding="utf-8") as stream:
            stream.write(text)
        return
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    descriptor, tmp = create_exclusive(directory, f".{os.path.basename(path)[:100]}.")  # (names stop at 255)
    try:
        with open(descriptor, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def create_exclusive(directory: str, prefix: str) -> tuple[int, str]:
    """A new file of our own in ``directory``: a random name, created with O_EXCL and O_NOFOLLOW.

    A predictable name in a shared folder can be taken first, by a symbolic
    link to someone else's file that an ordinary open would follow and
    truncate; this one never opens what it did not create.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(TRIES):
        path = os.path.join(directory, f"{prefix}{secrets.token_hex(8)}.tmp")
        try:
            return os.open(path, flags, 0o666), path
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name in {directory} after {TRIES} tries")


def file_problem(path: str) -> str | None:
    """Why ``path`` cannot be written as a file (None: it can), found by trying, and undone.

    Asked at start-up so an output that cannot be written fails before the
    load, not after it. Trying is the only honest check: permissions, a
    read-only file system and immutable files all say no only to a write.
    """
    absolute = os.path.abspath(path)
    if os.path.isdir(absolute):
        return "is a directory; give a file path"
    if os.path.lexists(absolute):
        try:
            with open(absolute, "a", encoding="utf-8"):
                pass  # (append mode: the file is left as it is)
        except OSError as exc:
            return f"cannot be written: {exc.strerror or exc}"
        return directory_problem(os.path.dirname(absolute), "its folder")
    return directory_problem(os.path.dirname(absolute), "its folder")


def directory_problem(path: str, what: str = "the folder") -> str | None:
    """Why files cannot be created in ``path``, made if missing (None: they can); nothing is left behind."""
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        return f"{what} {existing!r} is not a folder"
    try:
        descriptor, probe = create_exclusive(existing, ".pytest-memaslap-probe-")
    except OSError as exc:
        return f"{what} {existing!r} cannot be written: {exc.strerror or exc}"
    os.close(descriptor)
    os.unlink(probe)
    return None

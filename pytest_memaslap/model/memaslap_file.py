"""memaslap's ``-F`` configuration file: key size, value size and command distributions.

The format, as memaslap reads it: ``#`` starts a comment; a line ``key``,
``value`` or ``cmd`` starts a section; in ``key`` and ``value`` each line is
``start_len end_len proportion``; in ``cmd`` each line is ``cmd_type
proportion`` with 0 for set and 1 for get. The result is workload arguments,
which the slap mark's own arguments override.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pytest_memaslap.model.workload import WorkloadError

SECTIONS = ("key", "value", "cmd")
CMD_TYPES = {0: "set", 1: "get"}


def load_config(path: str | Path) -> dict[str, Any]:
    """Workload arguments (``key_size``, ``value_size``, ``commands``) from a memaslap configuration file."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise WorkloadError(
            f"config={str(path)!r}: cannot read the memaslap configuration file: {exc.strerror or exc}"
        ) from None
    except UnicodeDecodeError as exc:
        raise WorkloadError(
            f"config={str(path)!r}: not a memaslap configuration file (not UTF-8 text: byte {exc.start})"
        ) from None
    return parse_config(text, str(path))


def parse_config(text: str, source: str = "<config>") -> dict[str, Any]:
    rows: dict[str, list[tuple[float, ...]]] = {}
    section: str | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"config {source}, line {number}"
        if line in SECTIONS:
            section = line
            rows.setdefault(section, [])
            continue
        if section is None:
            raise WorkloadError(f"{where}: {line!r} comes before any section; sections: {', '.join(SECTIONS)}")
        fields = line.split()
        width = 2 if section == "cmd" else 3
        try:
            values = tuple(float(f) for f in fields)
        except ValueError:
            values = ()
        if len(values) != width or not all(math.isfinite(v) for v in values):
            shape = "cmd_type proportion" if section == "cmd" else "start_len end_len proportion"
            raise WorkloadError(f"{where}: {line!r} in section {section!r}: expected {width} finite numbers ({shape})")
        rows[section].append(values)
    if not rows:
        raise WorkloadError(f"config {source}: no key, value or cmd section")
    arguments: dict[str, Any] = {}
    for name, argument in (("key", "key_size"), ("value", "value_size")):
        if rows.get(name):
            arguments[argument] = [(_whole(lo, source, name), _whole(hi, source, name), p) for lo, hi, p in rows[name]]
    if rows.get("cmd"):
        commands: dict[str, float] = {}
        for cmd_type, proportion in rows["cmd"]:
            if cmd_type not in CMD_TYPES:
                raise WorkloadError(
                    f"config {source}: cmd_type {cmd_type:g} is not one memaslap knows; 0 is set, 1 is get "
                    "(other commands: use the slap mark's commands=)"
                )
            name = CMD_TYPES[int(cmd_type)]
            commands[name] = commands.get(name, 0.0) + proportion
        arguments["commands"] = commands
    return arguments


def _whole(value: float, source: str, section: str) -> int:
    if not value.is_integer():
        raise WorkloadError(f"config {source}: section {section!r}: lengths are whole numbers of bytes; got {value:g}")
    return int(value)

"""The JSON document of a session's slap runs (``--slap-json``, ``--slap-save``): one entry per slap() call."""

from __future__ import annotations

from typing import Any


def json_document(
    entries: list[dict[str, Any]], plugin_version: str, memcached_version: str, event_loop: str
) -> dict[str, Any]:
    """The ``--slap-json`` document: one entry per slap run, keyed by test node id."""
    tests = {}
    for entry in entries:
        data = dict(entry["result"])
        data["thresholds"] = entry["thresholds"]
        data["thresholds_enforced"] = entry["enforced"]
        data["memcached_version"] = entry["memcached_version"]
        tests[entry["key"]] = data
    return {
        "plugin_version": plugin_version,
        "memcached_version": memcached_version,
        "event_loop": event_loop,
        "tests": tests,
    }

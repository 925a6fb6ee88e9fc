"""The JSON document of a session's slap runs (``--slap-json``, ``--slap-save``): one entry per slap() call."""

from __future__ import annotations

from typing import Any

from pytest_memaslap.stats.outcome import CallOutcome


def json_document(
    outcomes: list[CallOutcome],
    percentiles: tuple[float, ...],
    plugin_version: str,
    memcached_version: str,
    event_loop: str | None,
) -> dict[str, Any]:
    """The ``--slap-json`` document: one entry per slap() call, keyed by its name (the test's node id).

    ``event_loop`` is None when no load ran.
    """
    return {
        "plugin_version": plugin_version,
        "memcached_version": memcached_version,
        "event_loop": event_loop,
        "tests": {outcome.key: outcome.to_json(percentiles) for outcome in outcomes},
    }

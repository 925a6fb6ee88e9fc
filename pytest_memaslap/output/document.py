"""The JSON document of a session's slap runs (``--slap-json``, ``--slap-save``): one entry per slap() call."""

from __future__ import annotations

from typing import Any

from pytest_memaslap.stats.outcome import CallOutcome


def json_document(
    outcomes: list[CallOutcome],
    percentiles: tuple[float, ...],
    plugin_version: str,
    memcached_version: str,
) -> dict[str, Any]:
    """The ``--slap-json`` document: one entry per slap() call, keyed by its name (the test's node id).

    ``engine`` says which hot path and event loop ran the loads (None when none ran).
    """
    return {
        "plugin_version": plugin_version,
        "memcached_version": memcached_version,
        "engine": _engine(outcomes),
        "tests": {outcome.key: outcome.to_json(percentiles) for outcome in outcomes},
    }


def _engine(outcomes: list[CallOutcome]) -> dict[str, str] | None:
    """What every load of the session ran on; several answers joined by ``+`` (``compiled+python``)."""
    if not outcomes:
        return None
    found: dict[str, set[str]] = {"implementation": set(), "event_loop": set()}
    for outcome in outcomes:
        found["implementation"].update(outcome.result.raw.implementation.split("+"))
        found["event_loop"].update(outcome.result.raw.event_loop.split("+"))
    return {name: "+".join(sorted(values - {""})) for name, values in found.items()}

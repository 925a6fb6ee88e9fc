"""What a twemproxy in front of the servers did during a call, from its stats documents read beside it.

Pure: handed the documents' counters (with the wall time each was read)
and the call's wall-clock window, it gives the ``server`` section's
``proxy`` part: the requests it forwarded, its errors by kind, its
ejections, per backend and between readings. twemproxy's event loop hands
its counters to its stats thread after handling an event (and at least
every ``-i`` ms), and the thread publishes them when read: a document holds
what happened up to a moment before it was read. So the sampler settles
its first reading before the call and its last after it (it pokes the
proxy: ``memcached.sampler``), and the totals between them hold the call
exactly when it could (``settled``).
"""

from __future__ import annotations

from typing import Any

# the pool's counters and each backend's: those that only grow, and the gauges read at a moment
POOL_COUNTERS = ("client_eof", "client_err", "forward_error", "server_ejects", "fragments")
BACKEND_COUNTERS = ("requests", "responses", "request_bytes", "response_bytes", "server_err", "server_timedout",
                    "server_eof")  # fmt: skip
BACKEND_GAUGES = ("in_queue", "out_queue", "server_connections")
ERRORS = ("client_err", "forward_error", "server_err", "server_timedout", "server_eof")
Counters = dict[tuple[str, str | None, str], float]  # {(pool, backend or None for the pool's, stat): value}
Reading = tuple[float, Counters]  # (the wall time it was read, its counters)


def reading(document: dict[str, Any]) -> Counters:
    """One document's counters, flat: (pool, None, stat) for a pool's, (pool, backend, stat) for a backend's."""
    values: Counters = {}
    for pool, entries in document.items():
        if not isinstance(entries, dict):
            continue
        for name, value in entries.items():
            if isinstance(value, dict):
                for stat in BACKEND_COUNTERS + BACKEND_GAUGES:
                    if isinstance(value.get(stat), int | float):
                        values[(pool, name, stat)] = float(value[stat])
            elif name in POOL_COUNTERS and isinstance(value, int | float):
                values[(pool, None, name)] = float(value)
    return values


def forwarded(counters: Counters) -> dict[tuple[str, str | None, str], float]:
    """The counters of what reached the backends (a poke of the proxy moves only the pool's client counters)."""
    return {key: value for key, value in counters.items() if key[2] in BACKEND_COUNTERS}


def proxy_section(
    address: str,
    readings: list[Reading],
    window: tuple[float, float],
    settled: bool,
    about: dict[str, Any],
    error: str | None,
) -> dict[str, Any]:
    """The proxy's part of a call: its totals between the first reading and the last, per backend, and
    between readings (``t_s`` from the call's start)."""
    start, _ = window
    section: dict[str, Any] = {"address": address, **about, "error": error, "readings": len(readings)}
    section["settled"] = settled
    if len(readings) < 2:
        section.update(total=None, backends=[], timeline=[])
        section["note"] = "fewer than two readings of the proxy's stats: nothing to say of the call"
        return section
    first, last = readings[0][1], readings[-1][1]
    delta = {key: last.get(key, 0.0) - first.get(key, 0.0) for key in last}
    section["total"] = _totals(delta)
    section["backends"] = [
        {"pool": pool, "server": name, **_backend(delta, pool, name)} for pool, name in _backend_names(last)
    ]
    section["timeline"] = [
        {"t_s": round(b_at - start, 3), **_between(a, b, b_at - a_at)}
        for (a_at, a), (b_at, b) in zip(readings, readings[1:], strict=False)
    ]
    if not settled:
        section["note"] = (
            "the proxy's counters still moved after the call: its totals may miss the call's last moments "
            "(twemproxy publishes at least every -i ms; -i 1000 keeps it within a second)"
        )
    return section


def _backend_names(values: Counters) -> list[tuple[str, str]]:
    return sorted({(pool, name) for pool, name, _ in values if name is not None})


def _summed(delta: Counters, stat: str) -> int:
    return round(sum(value for (_, _, name), value in delta.items() if name == stat))


def _totals(delta: Counters) -> dict[str, Any]:
    errors = {kind: _summed(delta, kind) for kind in ERRORS}
    return {
        "requests": _summed(delta, "requests"),
        "responses": _summed(delta, "responses"),
        "errors": sum(errors.values()),
        "errors_by_kind": errors,
        "ejects": _summed(delta, "server_ejects"),
        "fragments": _summed(delta, "fragments"),
    }


def _backend(delta: Counters, pool: str, name: str) -> dict[str, Any]:
    def stat(key: str) -> int:
        return round(delta.get((pool, name, key), 0.0))

    return {
        "requests": stat("requests"),
        "responses": stat("responses"),
        "errors": stat("server_err") + stat("server_timedout") + stat("server_eof"),
    }


def _between(before: Counters, after: Counters, seconds: float) -> dict[str, Any]:
    delta = {key: after.get(key, 0.0) - before.get(key, 0.0) for key in after}
    totals = _totals(delta)
    return {
        "requests_per_sec": round(totals["requests"] / seconds, 1) if seconds > 0 else None,
        "errors": totals["errors"],
        "ejects": totals["ejects"],
        "in_queue": round(sum(v for (_, _, name), v in after.items() if name == "in_queue")),
        "out_queue": round(sum(v for (_, _, name), v in after.items() if name == "out_queue")),
    }

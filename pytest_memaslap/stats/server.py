"""What the server did during a run, from its sampled ``stats``: per second, over the measured phase, in all.

Pure: handed each server's samples (wall time, cumulative counters and
gauges; one taken before the run, one a second, one after it) and the
measured phase's window, it gives the JSON's ``server`` section and the
``server.*`` metrics. Over the measured phase the counters are read at its
start and end by linear interpolation between the samples around them (a
second apart); the accounting check uses the first and last samples, which
bracket the whole call.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

# the counters whose growth is the requests a server answered (cmd_set counts every storage command, a cas too;
# cmd_get every key of a multi-get)
REQUEST_COUNTERS = (
    "cmd_get",
    "cmd_set",
    "cmd_touch",
    "delete_hits",
    "delete_misses",
    "incr_hits",
    "incr_misses",
    "decr_hits",
    "decr_misses",
)
Samples = list[tuple[float, dict[str, float]]]


def server_section(
    servers: list[tuple[str, dict[str, Any], Samples, str | None]],
    window: tuple[float, float],
    proxy: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON's ``server`` section: each server's measured-phase figures, timeline and settings, and their
    sum (``total``); ``accounting`` adds the check once the call's requests are all known (shards merged).
    ``proxy``: a twemproxy's part (``stats.proxy``), its errors and ejections added to the total."""
    per_server = []
    for name, settings, samples, error in servers:
        entry: dict[str, Any] = {"server": name, "settings": settings, "error": error}
        entry.update(_measured(samples, window))
        entry["timeline"] = _timeline(samples, window)
        entry["requests_in_call"] = _requests(samples[0][1], samples[-1][1]) if len(samples) > 1 else None
        per_server.append(entry)
    total = _sum([entry for entry in per_server if entry.get("ops") is not None])
    if proxy is not None:
        totals = proxy.get("total") or {}
        total["proxy_errors"] = totals.get("errors")
        total["proxy_ejects"] = totals.get("ejects")
        return {"servers": per_server, "total": total, "proxy": proxy}
    return {"servers": per_server, "total": total}


def metric(section: dict[str, Any] | None, name: str) -> float:
    """A ``server.*`` metric of a call (NaN when the server was not sampled)."""
    if not section or section["total"].get(name) is None:
        return float("nan")
    return float(section["total"][name])


def _requests(before: dict[str, float], after: dict[str, float]) -> int:
    return int(sum(after.get(c, 0.0) - before.get(c, 0.0) for c in REQUEST_COUNTERS))


def _at(samples: Samples, when: float) -> dict[str, float]:
    """The counters at wall time ``when``, interpolated between the samples around it (clamped at the ends)."""
    times = [t for t, _ in samples]
    i = bisect_left(times, when)
    if i == 0:
        return samples[0][1]
    if i >= len(samples):
        return samples[-1][1]
    (t0, a), (t1, b) = samples[i - 1], samples[i]
    share = (when - t0) / (t1 - t0) if t1 > t0 else 1.0
    return {name: a[name] + (b.get(name, a[name]) - a[name]) * share for name in a}


def _figures(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, Any]:
    """What the server did between two readings: its requests, CPU per request, hit ratio, evictions, bytes."""
    delta = {name: after.get(name, 0.0) - before.get(name, 0.0) for name in after}
    ops = sum(delta.get(c, 0.0) for c in REQUEST_COUNTERS)
    user_us, system_us = delta.get("rusage_user", 0.0) * 1e6, delta.get("rusage_system", 0.0) * 1e6
    lookups = delta.get("get_hits", 0.0) + delta.get("get_misses", 0.0)
    return {
        "ops": round(ops),
        "ops_per_sec": round(ops / seconds, 1) if seconds > 0 else None,
        "cpu_user_us": round(user_us),
        "cpu_system_us": round(system_us),
        "cpu_us_per_op": round((user_us + system_us) / ops, 3) if ops else None,
        "cpu_user_us_per_op": round(user_us / ops, 3) if ops else None,
        "cpu_system_us_per_op": round(system_us / ops, 3) if ops else None,
        "hit_ratio": round(delta.get("get_hits", 0.0) / lookups, 6) if lookups else None,
        "evictions": round(delta.get("evictions", 0.0)),
        "bytes_read": round(delta.get("bytes_read", 0.0)),
        "bytes_written": round(delta.get("bytes_written", 0.0)),
    }


def _measured(samples: Samples, window: tuple[float, float]) -> dict[str, Any]:
    """The measured phase's figures, with the gauges at its end; empty without two samples."""
    if len(samples) < 2:
        return {"ops": None}
    start, end = window
    figures = _figures(_at(samples, start), _at(samples, end), end - start)
    last = _at(samples, end)
    figures.update(
        {gauge: round(last[gauge]) for gauge in ("curr_connections", "curr_items", "bytes") if gauge in last}
    )
    return figures


def _timeline(samples: Samples, window: tuple[float, float]) -> list[dict[str, Any]]:
    """Each sample's second (from the one before it), its time from the measured phase's start."""
    points = []
    for (t0, a), (t1, b) in zip(samples, samples[1:], strict=False):
        point = {"t_s": round(t1 - window[0], 3)}
        point.update(_figures(a, b, t1 - t0))
        point.update({gauge: round(b[gauge]) for gauge in ("curr_connections", "curr_items", "bytes") if gauge in b})
        points.append(point)
    return points


def _sum(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """The servers' figures added up (the ratios recomputed from the sums)."""
    if not entries:
        return {}
    keys = ("ops", "cpu_user_us", "cpu_system_us", "evictions", "bytes_read", "bytes_written")
    total: dict[str, Any] = {key: sum(entry[key] for entry in entries) for key in keys}
    ops = total["ops"]
    cpu = total["cpu_user_us"] + total["cpu_system_us"]
    total["ops_per_sec"] = sum(entry["ops_per_sec"] or 0.0 for entry in entries)
    total["cpu_us_per_op"] = round(cpu / ops, 3) if ops else None
    total["cpu_user_us_per_op"] = round(total["cpu_user_us"] / ops, 3) if ops else None
    total["cpu_system_us_per_op"] = round(total["cpu_system_us"] / ops, 3) if ops else None
    ratios = [(entry["hit_ratio"], entry["ops"]) for entry in entries if entry["hit_ratio"] is not None]
    total["hit_ratio"] = round(sum(r * n for r, n in ratios) / sum(n for _, n in ratios), 6) if ratios else None
    return total


def accounting(section: dict[str, Any], requests_sent: int, why_not: str | None = None) -> dict[str, Any]:
    """Our requests of the whole call against what the servers counted in the same time (their first and last
    samples bracket it). ``why_not``: why the two cannot be equal (then it is not checked, and says why)."""
    counted = [entry["requests_in_call"] for entry in section["servers"]]
    if any(c is None for c in counted):
        why_not = why_not or "a server was not sampled before and after the call"
    servers = None if any(c is None for c in counted) else sum(counted)
    if why_not:
        return {"checked": False, "why_not": why_not, "ours": requests_sent, "servers": servers, "matches": None}
    return {"checked": True, "ours": requests_sent, "servers": servers, "matches": servers == requests_sent}

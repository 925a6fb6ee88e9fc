"""``memaslap-py``'s Server Statistics block: what the servers (and a twemproxy before them) did in its run."""

from __future__ import annotations

from typing import Any

from pytest_memaslap.stats.server import accounting


def server_report(section: dict[str, Any], requests_sent: int, why_not: str | None) -> str:
    """What the servers did in the measured phase (and a twemproxy in front of them), from their sampled stats;
    ``why_not``: why their request counters cannot equal this run's (then they are not compared)."""
    lines = ["Server Statistics (sampled once a second; the measured phase)"]
    for entry in section["servers"]:
        if entry.get("ops") is None:
            lines.append(f"  {entry['server']}: not sampled ({entry['error'] or 'fewer than two samples'})")
            continue
        lines.append(
            f"  {entry['server']}: {entry['ops']} requests, {entry['ops_per_sec']:,.0f}/s, CPU "
            f"{_us(entry['cpu_us_per_op'])} us/request (user {_us(entry['cpu_user_us_per_op'])}, system "
            f"{_us(entry['cpu_system_us_per_op'])}), hit ratio {_ratio(entry['hit_ratio'])}, evictions "
            f"{entry['evictions']}, connections {entry.get('curr_connections', '-')}, "
            f"items {entry.get('curr_items', '-')}"
        )
    check = accounting(section, requests_sent, why_not)
    if check["checked"]:
        verdict = "equal" if check["matches"] else f"{check['servers'] - check['ours']:+} (other clients count too)"
        lines.append(
            f"  accounting: the servers counted {check['servers']} requests, this run sent {check['ours']}: {verdict}"
        )
    else:
        lines.append(f"  accounting: not compared ({check['why_not']})")
    proxy = section.get("proxy")
    if proxy is not None:
        total = proxy.get("total")
        if total is None:
            lines.append(f"  proxy {proxy['address']}: {proxy['error'] or proxy.get('note', 'no readings')}")
        else:
            lines.append(
                f"  proxy {proxy['address']}: {total['requests']} requests forwarded, {total['errors']} errors, "
                f"{total['ejects']} ejects" + ("" if proxy["settled"] else f" ({proxy['note']})")
            )
    return "\n".join(lines)


def _us(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"

"""``--slap-html``: one HTML page with pictures of every slap run.

Charts are drawn by plotly (the optional ``report`` extra). plotly.js (4.6 MB)
is written once beside the page as ``plotly-VERSION.min.js`` and shared by
every report in that folder, so a report stays small (tens of kB a test) and
opens offline; ``--slap-html-inline`` puts it inside instead (one file to
keep as a CI artifact), as does a path that is not a regular file
(``/dev/stdout``). The charts are ``charts.py``'s. Per test: throughput and p99 over time, the latency-percentile
curve of every command (HdrHistogram-style, log scales), the thresholds with
their intervals, and each comparison (with a baseline, or B against A) as a
table and as every round of both sides beside the change's 95 % interval;
the page starts with the terminal's summary table.
"""

from __future__ import annotations

import html
import os
import time
from typing import Any

from tabulate import tabulate

from pytest_memaslap.output import charts
from pytest_memaslap.output.baseline import Comparison
from pytest_memaslap.output.files import write_text
from pytest_memaslap.output.terminal import comparison_cells, summary_headers, summary_rows
from pytest_memaslap.stats.outcome import CallOutcome

INSTALL_HINT = "pip install 'pytest-memaslap[report]'"
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.2rem 0.5rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
section.test { border-top: 2px solid #888; margin-top: 2rem; }
.fail { color: #b00020; font-weight: bold; }
.charts { display: flex; flex-wrap: wrap; gap: 1rem; }
.chart { width: 620px; height: 380px; }
.chart-title { margin: 0.5rem 0 0 0.5rem; font-weight: 600; color: #2a3f5f; }
.meta { color: #555; }
"""


class ReportExtraMissing(ImportError):
    """plotly is not installed; the message says how to get it."""


def check_available() -> None:
    """Fail early (at start-up, not after the load) when the plotting library is missing."""
    try:
        import plotly  # noqa: F401
    except ImportError:
        raise ReportExtraMissing(f"--slap-html needs the plotting library plotly: {INSTALL_HINT}") from None


def write_html(
    path: str,
    outcomes: list[CallOutcome],
    percentiles: tuple[float, ...],
    document: dict[str, Any],
    comparison: Comparison | None,
    inline: bool = False,
) -> None:
    """Write the report of the session's judged calls (and the comparison, when one was made)."""
    check_available()

    sections = [_test_section(o, percentiles, comparison, number) for number, o in enumerate(outcomes, start=1)]
    summary = tabulate(
        summary_rows(outcomes, percentiles),
        headers=summary_headers(percentiles),
        tablefmt="html",
        disable_numparse=True,
    )
    engine = document["engine"] or {"implementation": "-", "event_loop": "-"}
    meta = (
        f"pytest-memaslap {html.escape(str(document['plugin_version']))} · memcached "
        f"{html.escape(str(document['memcached_version']) or 'unknown')} · hot path "
        f"{html.escape(engine['implementation'])} · event loop {html.escape(engine['event_loop'])} · "
        f"written {time.strftime('%Y-%m-%d %H:%M:%S %z')}"
    )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>slap report</title>
<style>{STYLE}</style>
{_plotly_script(path, inline)}
</head><body>
<h1>slap report</h1>
<p class="meta">{meta}</p>
<h2>Summary</h2>
{summary}
{"".join(sections)}
<script>if (typeof Plotly === "undefined") document.body.insertAdjacentHTML("afterbegin", '{_missing_script_note()}');
</script>
</body></html>
"""
    write_text(path, page)


def plotly_script_name() -> str:
    """The name of plotly.js beside a report: versioned, so reports of two plotly versions never share it."""
    import plotly

    return f"plotly-{plotly.__version__}.min.js"


def _missing_script_note() -> str:
    """Shown at the top of a report opened without the plotly.js written beside it (a file copied alone)."""
    return (
        f'<p class="fail">The charts need {html.escape(plotly_script_name())} beside this file: it was written '
        "with the report. Copy it too, or rerun with --slap-html-inline for one file.</p>"
    )


def _plotly_script(path: str, inline: bool) -> str:
    """The page's script tag: plotly.js written once beside the report (or inlined), never fetched."""
    from plotly.offline import get_plotlyjs

    script = get_plotlyjs()
    regular = not os.path.islink(path) and (os.path.isfile(path) or not os.path.exists(path))
    if inline or not regular:
        return f'<script type="text/javascript">{script}</script>'
    beside = os.path.join(os.path.dirname(os.path.abspath(path)), plotly_script_name())
    if not os.path.isfile(beside) or os.path.getsize(beside) != len(script.encode("utf-8")):
        write_text(beside, script)
    return f'<script type="text/javascript" src="{html.escape(plotly_script_name())}"></script>'


def _test_section(
    outcome: CallOutcome, percentiles: tuple[float, ...], comparison: Comparison | None, number: int
) -> str:
    result = outcome.result_data(percentiles)
    verdict = outcome.verdict_text()
    css = ' class="fail"' if not outcome.passed or outcome.error else ""
    parts = [
        f'<section class="test" id="test-{number}">',
        f"<h2>{html.escape(outcome.key)}</h2>",
        f"<p{css}>verdict: {html.escape(verdict)}</p>",
    ]
    if outcome.error:
        parts.append(f'<p class="fail">run failed: {html.escape(outcome.error)}</p>')
    parts.append('<div class="charts">')
    parts.append(_chart(charts.throughput_figure(result), f"throughput-{number}"))
    parts.append(_chart(charts.percentile_figure(result), f"percentiles-{number}"))
    if result.get("server") and any(s["timeline"] for s in result["server"]["servers"]):
        parts.append(_chart(charts.server_figure(result["server"]), f"server-{number}"))
    if result.get("capacity"):
        parts.append(_chart(charts.capacity_figure(result["capacity"]), f"capacity-{number}"))
    parts.append("</div>")
    for title, rows in (("Stages", result.get("stages")), ("Connection steps", result.get("connection_steps"))):
        if rows:  # a staged run, or connection steps: what each stage or step did
            parts.append(f"<h3>{title}</h3>")
            parts.append(tabulate([list(row.values()) for row in rows], headers=list(rows[0]), tablefmt="html"))
    if outcome.verdicts:
        parts.append("<h3>Thresholds</h3>")
        parts.append(
            tabulate(
                outcome.threshold_rows(),
                headers=("threshold", "required", "measured", "95% interval", "verdict"),
                tablefmt="html",
            )
        )
    engine = result.get("engine")
    if engine:  # how far to trust the figures: was the load generator, or its machine, the limit?
        parts.append("<h3>Load generator</h3>")
        parts.append(tabulate(_engine_rows(engine), tablefmt="html"))
    compared = (
        ("Comparison with the baseline", "baseline", "current", comparison.rows if comparison else ()),
        ("Interleaved A/B: B against A", "A", "B", outcome.versus.rows if outcome.versus else ()),
    )
    for title, before, after, all_rows in compared:
        rows = tuple(row for row in all_rows if row.test == outcome.key)
        if not rows:
            continue
        parts.append(f"<h3>{title}</h3>")
        headers = ("metric", before, after, "change", "95% interval", "rounds", "verdict")
        parts.append(tabulate([cells[1:] for cells in comparison_cells(rows)], headers=headers, tablefmt="html"))
        parts.append('<div class="charts">')
        parts.append(_chart(charts.rounds_figure(rows, before, after), f"rounds-{title[:5].lower()}-{number}"))
        parts.append("</div>")
    parts.append("</section>")
    return "\n".join(parts)


def _engine_rows(engine: dict[str, Any]) -> list[tuple[str, str]]:
    """The JSON's ``engine`` block as lines a reader judges a result by (see docs/measurement.md)."""
    cost = engine.get("cpu_us_per_request")
    lag = engine["loop_lag_us"]
    hiccups = engine.get("machine_hiccups_us")
    longest = engine.get("periodic_max_us", {})
    return [
        ("hot path, event loop", f"{engine['implementation']}, {engine['event_loop']}"),
        (
            "CPU",
            f"{engine['cpu_pct']:.0f} %"
            + (f"; per request {cost['user']} µs user, {cost['system']} µs system" if cost else ""),
        ),
        ("event loop lag", f"p99 {lag['p99']:,.0f} µs, max {lag['max']:,.0f} µs"),
        (
            "machine hiccups (a sleeping thread woke late)",
            f"p99 {hiccups['p99']:,.0f} µs, max {hiccups['max']:,.0f} µs" if hiccups else "not measured",
        ),
        ("longest periodic blocks", ", ".join(f"{name} {value:,.0f} µs" for name, value in longest.items())),
        ("limited by the load generator", engine.get("limited_by_load_generator") or "no"),
    ]


def _chart(figure: Any, div_id: str) -> str:
    """The chart as HTML: its title a caption above it, so that plotly's toolbar (top right) never covers it."""
    import plotly.io as pio

    title = figure.layout.title.text or ""
    figure.update_layout(title=None)
    caption = f'<p class="chart-title">{html.escape(title)}</p>' if title else ""
    return (
        '<div class="chart-box">'
        + caption
        + str(
            pio.to_html(
                figure,
                full_html=False,
                include_plotlyjs=False,
                div_id=div_id,
                default_width="620px",
                default_height="380px",
                config={"displaylogo": False, "responsive": True, "displayModeBar": "hover"},
            )
        )
        + "</div>"
    )

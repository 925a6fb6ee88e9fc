"""``--slap-html``: one HTML page with pictures of every slap run.

Charts are drawn by plotly (the optional ``report`` extra). plotly.js (4.6 MB)
is written once beside the page as ``plotly-VERSION.min.js`` and shared by
every report in that folder, so a report stays small (tens of kB a test) and
opens offline; ``--slap-html-inline`` puts it inside instead (one file to
keep as a CI artifact), as does a path that is not a regular file
(``/dev/stdout``). Per test: throughput and p99 over time, the latency-percentile
curve of every command (HdrHistogram-style, log scales), the thresholds with
their intervals, and each comparison (with a baseline, or B against A) as a
table and as every round of both sides beside the change's 95 % interval;
the page starts with the terminal's summary table.
"""

from __future__ import annotations

import html
import math
import os
import time
from typing import Any

from tabulate import tabulate

from pytest_memaslap.model.metrics import format_metric, is_latency
from pytest_memaslap.output.baseline import Comparison
from pytest_memaslap.output.files import write_text
from pytest_memaslap.output.terminal import comparison_cells, summary_headers, summary_rows
from pytest_memaslap.stats.comparison import Row
from pytest_memaslap.stats.outcome import CallOutcome

INSTALL_HINT = "pip install 'pytest-memaslap[report]'"
TAIL_TICKS = (50.0, 90.0, 99.0, 99.9, 99.99, 99.999, 99.9999)
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
    parts.append(_chart(_throughput_figure(result), f"throughput-{number}"))
    parts.append(_chart(_percentile_figure(result), f"percentiles-{number}"))
    if result.get("server") and any(s["timeline"] for s in result["server"]["servers"]):
        parts.append(_chart(_server_figure(result["server"]), f"server-{number}"))
    if result.get("capacity"):
        parts.append(_chart(_capacity_figure(result["capacity"]), f"capacity-{number}"))
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
        parts.append(_chart(_rounds_figure(rows, before, after), f"rounds-{title[:5].lower()}-{number}"))
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


def _rounds_figure(rows: tuple[Row, ...], before: str, after: str) -> Any:
    """Each compared metric's rounds, both sides as dots (in % of the first side's centre), with the change's
    95 % interval as a bar around the second side's centre: the noise a verdict was judged against."""
    from plotly import graph_objects as go

    figure = go.Figure()
    shown = [row for row in rows if row.baseline and row.change.estimate_pct is not None]
    for side, values_of, colour in ((before, "baseline_values", "#636efa"), (after, "current_values", "#ef553b")):
        xs, ys, texts = [], [], []
        for row in shown:
            centre = row.baseline or 1.0
            for value in getattr(row, values_of):
                xs.append(row.metric)
                ys.append((value / centre - 1.0) * 100.0)
                texts.append(format_metric(row.metric.rpartition(".")[2], value))
        figure.add_trace(
            go.Box(
                x=xs,
                y=ys,
                name=f"{side}: each round",
                boxpoints="all",
                jitter=0.4,
                pointpos=0,
                fillcolor="rgba(0,0,0,0)",
                line={"color": "rgba(0,0,0,0)"},
                marker={"color": colour, "size": 7},
                text=texts,
                hovertemplate="%{x}: %{text} (%{y:+.1f} %)<extra>" + side + "</extra>",
            )
        )
    judged = [row for row in shown if row.change.has_interval and math.isfinite(row.change.estimate_pct or 0.0)]
    figure.add_trace(
        go.Scatter(
            x=[row.metric for row in judged],
            y=[row.change.estimate_pct for row in judged],
            error_y={
                "type": "data",
                "symmetric": False,
                "array": [(row.change.high_pct or 0.0) - (row.change.estimate_pct or 0.0) for row in judged],
                "arrayminus": [(row.change.estimate_pct or 0.0) - (row.change.low_pct or 0.0) for row in judged],
            },
            mode="markers",
            marker={"symbol": "diamond", "size": 11, "color": "#222"},
            name=f"change of {after} and its 95 % interval",
            text=[row.verdict.word for row in judged],
            hovertemplate="%{x}: %{y:+.1f} % (%{text})<extra></extra>",
        )
    )
    for row in shown:  # each gated metric's allowance, as a short dashed line at its column
        if row.allowance is not None:
            figure.add_trace(
                go.Scatter(
                    x=[row.metric, row.metric],
                    y=[row.allowance, row.allowance],
                    mode="markers",
                    marker={"symbol": "line-ew-open", "size": 40, "color": "#b00020"},
                    name=f"allowance {row.allowance:+g} %",
                    hoverinfo="skip",
                )
            )
    figure.update_layout(
        title=f"Rounds of {before} and {after}, in % of {before}",
        boxmode="group",
        yaxis={"title": {"text": f"% of {before}'s centre"}, "zeroline": True, "ticksuffix": " %"},
        legend={"orientation": "h", "y": -0.25},
        margin={"t": TOP_MARGIN},
    )
    return figure


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


def _throughput_figure(result: dict[str, Any]) -> Any:
    """Ops completed in each second of the measured phase, with that second's p99 on a second axis."""
    from plotly import graph_objects as go

    timeline = result["timeline"]
    seconds = [point["second"] + 1 for point in timeline]
    figure = go.Figure()
    figure.add_trace(go.Bar(x=seconds, y=[p["ops"] for p in timeline], name="ops in the second", opacity=0.75))
    unit, scale = _latency_unit(max((p["p99_us"] for p in timeline), default=0.0))
    figure.add_trace(
        go.Scatter(
            x=seconds, y=[p["p99_us"] / scale for p in timeline], name=f"p99 ({unit})", yaxis="y2", mode="lines+markers"
        )
    )
    if any(p.get("target") is not None for p in timeline):  # an open loop: what was asked for, beside the bars
        figure.add_trace(
            go.Scatter(
                x=seconds, y=[p.get("target") for p in timeline], name="target", mode="lines", line={"dash": "dash"}
            )
        )
    if any(p["errors"] for p in timeline):
        figure.add_trace(go.Scatter(x=seconds, y=[p["errors"] for p in timeline], name="errors", mode="lines"))
    figure.update_layout(
        title=f"Throughput over time ({result['ops_per_sec']:,.0f} ops/s overall)",
        xaxis={
            "title": {"text": "second of the measured phase (the last may be partial)"},
            "dtick": max(1, len(seconds) // 12),
        },
        yaxis={"title": {"text": "ops"}, "rangemode": "tozero"},
        yaxis2={"title": {"text": f"p99 ({unit})"}, "overlaying": "y", "side": "right", "rangemode": "tozero"}
        | WHOLE_UNITS,
        legend={"orientation": "h", "y": -0.25},
        margin={"t": TOP_MARGIN, "r": 60},
    )
    return figure


def _server_figure(server: dict[str, Any]) -> Any:
    """What each server did second by second (--slap-server-stats): its CPU per request, the requests it
    answered, and its evictions, on the measured phase's clock (beside the throughput chart)."""
    from plotly import graph_objects as go

    figure = go.Figure()
    for entry in server["servers"]:
        points = entry["timeline"]
        seconds = [point["t_s"] for point in points]
        name = entry["server"]
        cpu = [point["cpu_us_per_op"] for point in points]
        figure.add_trace(go.Scatter(x=seconds, y=cpu, name=f"{name} CPU µs/request", mode="lines+markers"))
        figure.add_trace(
            go.Scatter(x=seconds, y=[p["ops_per_sec"] for p in points], name=f"{name} requests/s", yaxis="y2")
        )
        if any(point["evictions"] for point in points):
            evictions = [point["evictions"] for point in points]
            figure.add_trace(go.Scatter(x=seconds, y=evictions, name=f"{name} evictions", yaxis="y2", mode="lines"))
    figure.update_layout(
        title="The server's side (CPU per request, requests, evictions)",
        xaxis={"title": {"text": "seconds from the measured phase's start (its samples, a second apart)"}},
        yaxis={"title": {"text": "CPU µs per request"}, "rangemode": "tozero"},
        yaxis2={"title": {"text": "per second"}, "overlaying": "y", "side": "right", "rangemode": "tozero"}
        | WHOLE_UNITS,
        legend={"orientation": "h", "y": -0.25},
        margin={"t": TOP_MARGIN, "r": 60},
    )
    return figure


def _capacity_figure(capacity: dict[str, Any]) -> Any:
    """A capacity search's latency-vs-throughput curve: p50, p99, p99.9 by achieved rate, the SLO and the knee."""
    from plotly import graph_objects as go

    from pytest_memaslap.model.thresholds import Threshold

    steps = sorted(capacity["steps"], key=lambda step: step["achieved"])
    figure = go.Figure()
    colours = {"p50": "#636efa", "p99": "#ef553b", "p99.9": "#00cc96"}
    for key, name in (("p50_us", "p50"), ("p99_us", "p99"), ("p999_us", "p99.9")):
        for passed in (True, False):  # the curve through the steps that passed; the failed ones as crosses
            chosen = [step for step in steps if step["passed"] == passed]
            figure.add_trace(
                go.Scatter(
                    x=[step["achieved"] for step in chosen],
                    y=[step[key] for step in chosen],
                    name=name if passed else f"{name}, failed step",
                    legendgroup=name,
                    showlegend=passed,
                    mode="lines+markers" if passed else "markers",
                    marker={"symbol": "circle" if passed else "x", "size": 9, "color": colours[name]},
                    line={"color": colours[name]},
                    text=[f"rate {step['rate']:,.0f}/s: {'pass' if passed else 'fail'}" for step in chosen],
                    hovertemplate="%{text}<br>achieved %{x:,.0f}/s: %{y:.1f} µs<extra>" + name + "</extra>",
                )
            )
    values = [step[key] for step in steps for key in ("p50_us", "p99_us", "p999_us") if step[key] > 0]
    for expr in capacity["slo"]:
        rule = Threshold.parse(expr)
        if is_latency(rule.metric) and steps:  # (a trace, not a shape: shapes on a log axis take log units)
            span = [0.0, max(step["achieved"] for step in steps)]
            figure.add_trace(
                go.Scatter(x=span, y=[rule.required] * 2, name=f"SLO: {expr}", mode="lines", line={"dash": "dash"})
            )
            values.append(rule.required)
    if capacity["ops_per_sec"]:
        figure.add_vline(
            x=capacity["ops_per_sec"], line_dash="dot", annotation_text=f"capacity {capacity['ops_per_sec']:,.0f}/s"
        )
    figure.update_layout(
        title="Latency by throughput (capacity search; ×: a failed step)",
        xaxis={"title": {"text": "achieved ops/s"}},
        # (a log axis's range is in decades; it spans the SLO lines too, which autorange would leave out)
        yaxis={"title": {"text": "latency (µs)"}, "range": _decades(values)} | LOG_DECADES,
        legend={"orientation": "h", "y": -0.25},
        margin={"t": TOP_MARGIN},
    )
    return figure


TOP_MARGIN = 36  # room above the plot for plotly's toolbar (the title is a caption above the chart: see _chart)
# a second axis's ticks are its own (not aligned with the first's, which gave 0.0578 / 0.1155), in whole units
WHOLE_UNITS = {"tickmode": "auto", "tickformat": ",.0f", "showgrid": False}
# a log axis labels its decades only (1, 10, 100, 1,000 µs); minor ticks mark 2..9 without crowding labels
LOG_DECADES = {"type": "log", "dtick": 1, "tickformat": ",.0f", "minor": {"ticks": "outside", "showgrid": True}}


def _latency_unit(largest_us: float) -> tuple[str, float]:
    """µs for latencies under 10 ms (whole µs read well), ms above; the divisor from µs."""
    return ("µs", 1.0) if largest_us < 10_000 else ("ms", 1000.0)


def _decades(values: list[float]) -> list[float] | None:
    """A log axis's range (in powers of ten) with a little room around ``values``."""
    if not values:
        return None
    return [math.log10(min(values)) - 0.2, math.log10(max(values)) + 0.2]


def _percentile_figure(result: dict[str, Any]) -> Any:
    """Latency against percentile on a log 1/(1-p) axis, so the tail (99.9 %, 99.99 %) gets room."""
    from plotly import graph_objects as go

    figure = go.Figure()
    curves = [("total", result.get("spectrum_us", []))]
    curves += [(name, cmd.get("spectrum_us", [])) for name, cmd in result["commands"].items()]
    for name, spectrum in curves:
        points = [(q, us) for q, us in spectrum if q < 100.0]
        figure.add_trace(
            go.Scatter(
                x=[100.0 / (100.0 - q) for q, _ in points],
                y=[us for _, us in points],
                name=name,
                mode="lines+markers",
                text=[f"p{q:g}" for q, _ in points],
                hovertemplate="%{text}: %{y:.1f} µs<extra>" + name + "</extra>",
            )
        )
    figure.update_layout(
        title="Latency by percentile",
        xaxis={
            "type": "log",
            "title": {"text": "percentile"},
            "tickvals": [100.0 / (100.0 - q) for q in TAIL_TICKS],
            "ticktext": [f"{q:g}%" for q in TAIL_TICKS],
        },
        yaxis={"title": {"text": "latency (µs)"}} | LOG_DECADES,
        legend={"orientation": "h", "y": -0.25},
        margin={"t": TOP_MARGIN},
    )
    return figure

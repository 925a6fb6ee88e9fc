"""--slap-html: a report that fetches nothing, whose charts render in a real browser (headless Chromium)."""

from __future__ import annotations

import html
import os
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest
from conftest import run_subprocess

from pytest_memaslap.output.html import plotly_script_name

ARTIFACTS = Path(os.environ.get("SLAP_TEST_ARTIFACTS", Path(__file__).resolve().parent.parent / "test-artifacts"))
BROWSER_TIMEOUT_S = 60
TWO_TESTS = """
import pytest

@pytest.mark.slap(duration="1.5s", connections=2, keys=300)
@pytest.mark.slap_thresholds("ops_per_sec >= 1", "get.p99 < 1s")
def test_mix(slap):
    slap()

@pytest.mark.slap(duration="1.5s", connections=2, keys=300, commands={"set": 1})
def test_sets(slap):
    slap()
"""
ONE_TEST = """
import pytest

@pytest.mark.slap(duration="1s", connections=2, keys=300)
def test_mix(slap):
    slap()
"""


def _chromium() -> str:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/setup installs Debian's chromium package")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return browser


def _browse(browser: str, page: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        browser,
        "--headless",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--no-first-run",
        "--virtual-time-budget=10000",  # let plotly.js draw before the DOM is read
        *args,
        page.as_uri(),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=BROWSER_TIMEOUT_S, check=False)


def _png_colours(path: Path) -> int:
    """How many distinct byte values the decoded image holds: a blank page has one or two."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    pos, idat = 8, b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        if kind == b"IDAT":
            idat += data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    return len(set(zlib.decompress(idat)))


def test_html_report_charts_render_in_headless_chromium(pytester):
    browser = _chromium()
    pytester.makepyfile(TWO_TESTS)
    pytester.runpytest("-p", "no:cacheprovider", "--slap-save=base").assert_outcomes(passed=2)
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "--slap-html=report/slap.html", "--slap-compare=base", "--slap-rounds=2"
    )
    result.assert_outcomes(passed=2)
    page = pytester.path / "report" / "slap.html"
    script = pytester.path / "report" / plotly_script_name()
    sources = re.findall(r"\b(?:src|href)=\"([^\"]*)\"", page.read_text())
    assert sources == [script.name] and script.is_file(), "the report fetches nothing: plotly.js is beside it"
    assert page.stat().st_size < 1_000_000, "a report's charts share the script beside it: it stays small"

    dumped = _browse(browser, page, "--dump-dom")
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = dumped.stdout
    for number in (1, 2):
        for chart in ("throughput", "percentiles"):
            match = re.search(rf'<div id="{chart}-{number}"[^>]*>(.*?)</div>\s*</div>\s*</div>', dom, re.S)
            body = dom.split(f'id="{chart}-{number}"', 1)[1][:200_000] if match is None else match.group(1)
            assert 'class="main-svg"' in body, f"chart {chart}-{number} did not render"
    for number in (1, 2):  # the server's side, sampled beside each call
        body = dom.split(f'id="server-{number}"', 1)[1][:200_000]
        assert 'class="main-svg"' in body and "CPU µs/request" in body, f"chart server-{number} did not render"
    assert dom.count('class="trace bars"') == 2  # throughput bars, one chart per test
    assert len(re.findall(r'class="trace scatter', dom)) >= 5  # p99 lines and the percentile curves
    for heading in ("test_mix", "test_sets", "Thresholds", "Comparison with the baseline", "2 rounds"):
        assert heading in dom
    assert dom.count("<h3>Load generator</h3>") == 2 and "machine hiccups" in dom  # (how far to trust each)

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "slap-report.png"
    shot.unlink(missing_ok=True)
    shutil.copy(page, ARTIFACTS / "slap-report.html")
    shutil.copy(script, ARTIFACTS / script.name)
    taken = _browse(browser, page, "--window-size=1400,2400", f"--screenshot={shot}")
    assert taken.returncode == 0 and shot.is_file(), taken.stderr[-2000:]
    assert _png_colours(shot) > 50, "the screenshot is blank"


def test_a_report_copied_without_its_script_says_what_is_missing(pytester):
    browser = _chromium()
    pytester.makepyfile(ONE_TEST)
    pytester.runpytest("-p", "no:cacheprovider", "--slap-html=slap.html").assert_outcomes(passed=1)
    (pytester.path / plotly_script_name()).unlink()
    dumped = _browse(browser, pytester.path / "slap.html", "--dump-dom")
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    assert f"The charts need {plotly_script_name()} beside this file" in dumped.stdout


def test_html_inline_without_a_report_is_a_usage_error(pytester):
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest("--slap-html-inline")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.stderr.str().count("--slap-html-inline: it says how --slap-html writes its report") == 1


def test_html_report_without_plotly_is_refused_up_front(pytester):
    blocker = pytester.mkdir("no_plotly") / "plotly"
    blocker.mkdir()
    (blocker / "__init__.py").write_text("raise ImportError('plotly is blocked for this test')\n")
    pytester.makepyfile("def test_nothing(): pass")
    env_path = os.pathsep.join([str(blocker.parent), os.environ.get("PYTHONPATH", "")])
    pytester._monkeypatch.setenv("PYTHONPATH", env_path)
    result = run_subprocess(pytester, "--slap-html=out.html")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--slap-html needs the plotting library plotly: pip install 'pytest-memaslap[report]'" in result.stderr.str()
    assert not (pytester.path / "out.html").exists()


def test_a_capacity_search_draws_its_latency_by_throughput_curve(pytester):
    browser = _chromium()
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.slap(connections=4, keys=200)
        @pytest.mark.slap_capacity(slo="p99 < 20ms", start="2k", step="0.2s", max_steps=5)
        def test_search(slap):
            slap()
        """
    )
    pytester.runpytest("-p", "no:cacheprovider", "--slap-html=slap.html", "--slap-html-inline").assert_outcomes(
        passed=1
    )
    assert not list(pytester.path.glob("plotly-*.js")), "--slap-html-inline writes one file"
    markup = re.sub(r"<script[^>]*>.*?</script>", "", (pytester.path / "slap.html").read_text(), flags=re.S)
    assert "<script" in (pytester.path / "slap.html").read_text() and not re.search(r"\b(?:src|href)=", markup)
    dumped = _browse(browser, pytester.path / "slap.html", "--dump-dom")
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    before, body = dumped.stdout.split('id="capacity-1"', 1)
    body = body[:200_000]
    assert "Latency by throughput" in before.rsplit('class="chart-title"', 1)[1], "the chart's caption is missing"

    assert 'class="main-svg"' in body, "the capacity chart did not render"
    text = html.unescape(re.sub(r"<[^>]+>", " ", body))
    assert "SLO: p99 < 20ms" in text, text[:3000]


def _timeline_result(p99s_us: list[float]) -> dict:
    timeline = [{"second": i, "ops": 1000, "p99_us": p99, "errors": 0} for i, p99 in enumerate(p99s_us)]
    return {"timeline": timeline, "ops_per_sec": 1000.0}


def test_the_p99_axis_reads_in_whole_units_of_a_fitting_size():
    """Sub-millisecond p99s are drawn in µs, longer ones in ms; the second axis has its own whole-unit ticks."""
    from pytest_memaslap.output import charts

    fast = charts.throughput_figure(_timeline_result([57.8, 115.5, 173.3])).to_plotly_json()
    assert fast["data"][1]["name"] == "p99 (µs)" and list(fast["data"][1]["y"]) == [57.8, 115.5, 173.3]
    axis = fast["layout"]["yaxis2"]
    assert axis["tickformat"] == ",.0f" and axis["tickmode"] == "auto" and axis["title"]["text"] == "p99 (µs)"
    slow = charts.throughput_figure(_timeline_result([12_000.0, 25_000.0])).to_plotly_json()
    assert slow["data"][1]["name"] == "p99 (ms)" and list(slow["data"][1]["y"]) == [12.0, 25.0]


def test_titles_stay_clear_of_the_toolbar_and_log_axes_label_decades_only():
    """A chart's title is a caption above it (plotly's toolbar sits at the plot's top right); log axes label
    their decades only."""
    from pytest_memaslap.output import charts, html

    result = {"spectrum_us": [(50.0, 100.0), (99.0, 900.0), (99.9, 4000.0)], "commands": {}}
    figure = charts.percentile_figure(result)
    log_axis = figure.to_plotly_json()["layout"]["yaxis"]
    assert log_axis["type"] == "log" and log_axis["dtick"] == 1 and log_axis["tickformat"] == ",.0f"
    chart = html._chart(figure, "percentiles-1")
    assert chart.startswith('<div class="chart-box"><p class="chart-title">Latency by percentile</p>')
    assert figure.layout.title.text is None and "Latency by percentile" not in chart.split("</p>", 1)[1]

"""The documentation: every option, ini key and mark argument documented, and the site builds without a warning."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_memaslap.model import metrics
from pytest_memaslap.model.arguments import ARGUMENTS
from pytest_memaslap.model.metrics import SERVER_METRICS
from pytest_memaslap.model.parsers import ARRIVALS, PROTOCOLS, TRANSPORTS
from pytest_memaslap.model.workload import Workload, WorkloadError
from pytest_memaslap.plugin.optiontable import OPTIONS

DOCS = Path(__file__).resolve().parent.parent / "docs"
sys.path.insert(0, str(DOCS))
import generate_reference  # noqa: E402  (docs/generate_reference.py: the reference pages' writer)


def test_the_generated_reference_pages_are_up_to_date():
    """options.md and marks.md are written from the code; an edit to either side without the other fails here."""
    for name, render in generate_reference.PAGES.items():
        assert (DOCS / name).read_text() == render(), f"docs/{name} is stale: run python docs/generate_reference.py"


def test_every_option_and_ini_key_is_in_the_options_reference():
    text = (DOCS / "options.md").read_text()
    rows = re.findall(r"^\| `(--[a-z-]+)[^`]*` \| `([a-z_]+)` \|", text, re.M)
    assert {flag for flag, _ in rows} == {option.flag for option in OPTIONS}
    assert {ini for _, ini in rows} == {option.ini for option in OPTIONS}


def test_every_mark_argument_is_in_the_mark_reference_with_its_kind_default_and_allowed_values():
    text = (DOCS / "marks.md").read_text()
    table = text.split("## `@pytest.mark.slap(...)`: the workload", 1)[1].split("\n## ", 1)[0]
    row = re.compile(r"^\| `([a-z_]+)` \| ([^|]+) \| ([^|]+) \| (.+?) \| (.+) \|$", re.M)
    rows = {name: cells for name, *cells in row.findall(table)}
    assert set(rows) == set(Workload.argument_names()) | {"config"}
    assert not [name for name, cells in rows.items() if not all(cell.strip() for cell in cells)]


def test_every_example_in_the_argument_table_parses():
    """The reference's examples are values the parsers take (and the table covers every field, nothing else)."""
    assert set(ARGUMENTS) == set(Workload.argument_names())
    for argument in ARGUMENTS.values():
        argument.parse(argument.example)


def test_a_choice_argument_lists_exactly_what_its_parser_takes():
    for name, choices in (("protocol", PROTOCOLS), ("arrivals", ARRIVALS), ("transport", TRANSPORTS)):
        assert ARGUMENTS[name].accepts == ", ".join(f"`{c}`" for c in choices)
        for choice in choices:
            assert ARGUMENTS[name].parse(choice) == choice
        with pytest.raises(WorkloadError, match=f"{name}='nope': allowed: {', '.join(choices)}"):
            ARGUMENTS[name].parse("nope")


def test_every_threshold_metric_is_in_the_mark_reference():
    text = (DOCS / "marks.md").read_text()
    names = metrics.TOTAL_METRICS + metrics.COMMAND_METRICS + metrics.ENGINE_GROUPS + metrics.SERVER_METRICS
    assert not [name for name in names if f"`{name}`" not in text]


def test_every_server_metric_is_named_in_the_measurement_page():
    text = (DOCS / "measurement.md").read_text()
    assert not [name for name in SERVER_METRICS if f"`server.{name}`" not in text]


def test_the_documentation_site_builds_without_a_warning(tmp_path):
    if shutil.which("mkdocs", path=os.path.dirname(sys.executable)) is None:
        if os.environ.get("CI"):  # (the dev extra installs it: in CI its absence is a failure, not a skip)
            pytest.fail("mkdocs is missing although the dev extra installs it")
        pytest.skip("mkdocs is not installed: pip install -e '.[docs]'")
    mkdocs = shutil.which("mkdocs", path=os.path.dirname(sys.executable))
    assert mkdocs is not None
    done = subprocess.run(
        [mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=DOCS.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "site" / "index.html").exists() and (tmp_path / "site" / "options" / "index.html").exists()

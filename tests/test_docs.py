"""The documentation: every option, ini key and mark argument documented, and the site builds without a warning."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_memaslap.model.metrics import SERVER_METRICS
from pytest_memaslap.model.workload import Workload
from pytest_memaslap.plugin.optiontable import OPTIONS

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_every_option_and_ini_key_is_in_the_options_reference():
    text = (DOCS / "options.md").read_text()
    rows = re.findall(r"^\| `(--[a-z-]+)[^`]*` \| `([a-z_]+)` \|", text, re.M)
    assert {flag for flag, _ in rows} == {option.flag for option in OPTIONS}
    assert {ini for _, ini in rows} == {option.ini for option in OPTIONS}


def test_every_mark_argument_is_in_the_slap_marks_table():
    text = (DOCS / "writing-tests.md").read_text()
    table = text.split("## The `slap` mark: the workload", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", table, re.M))
    missing = set(Workload.argument_names()) - documented
    assert not missing, f"mark arguments missing from docs/writing-tests.md: {sorted(missing)}"


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

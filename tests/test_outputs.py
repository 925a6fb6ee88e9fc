"""Outputs that cannot be written fail before the load; a write that fails at the end loses nothing else."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

pytest_plugins = ["pytester"]

ONE_TEST = """
import pytest

@pytest.mark.slap(ops=500, connections=2, keys=100)
@pytest.mark.slap_thresholds("errors == 0")
def test_it(slap):
    slap()
"""


def _leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name or "probe" in p.name)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--slap-json=out"], "*--slap-json=out: is a directory; give a file path*"),
        (["--slap-html=out"], "*--slap-html=out: is a directory; give a file path*"),
        (["--slap-json=r.json/x.json"], "*--slap-json=r.json/x.json: its folder '*r.json' is not a folder*"),
        (["--slap-storage=/dev/null", "--slap-save=x"], "*--slap-storage=/dev/null: the results folder '/dev/null'*"),
    ],
)
def test_an_output_that_cannot_be_written_is_a_usage_error_before_any_load(pytester, no_new_memcached, args, message):
    (pytester.path / "out").mkdir()
    (pytester.path / "r.json").write_text("{}")
    pytester.makepyfile(ONE_TEST)
    result = pytester.runpytest("-p", "no:cacheprovider", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "slap summary" not in result.stdout.str()  # no load ran
    assert _leftovers(pytester.path) == []


def test_an_immutable_output_file_is_refused_before_any_load(pytester, tmp_path):
    target = pytester.path / "r.json"
    target.write_text("{}")
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(target)]).returncode != 0:
        pytest.skip("this file system cannot make a file immutable (chattr +i)")
    try:
        pytester.makepyfile(ONE_TEST)
        result = pytester.runpytest("-p", "no:cacheprovider", "--slap-json=r.json")
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines(["*--slap-json=r.json: cannot be written: Operation not permitted*"])
    finally:
        subprocess.run(["chattr", "-i", str(target)], check=True)
    assert target.read_text() == "{}"


def test_a_write_that_fails_at_the_end_keeps_the_summary_and_the_other_outputs(pytester):
    """A disk that fills during the run (here /dev/full): the summary and the other files still come out."""
    if not os.path.exists("/dev/full"):
        pytest.skip("this machine has no /dev/full to stand for a full disk")
    pytester.makepyfile(ONE_TEST)
    result = pytester.runpytest("-p", "no:cacheprovider", "--slap-json=/dev/full", "--slap-save=kept")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["*slap summary*", "*1/1 pass*", "*--slap-json: /dev/full could not be written: No space left on device*"]
    )
    assert "slap results written to" not in result.stdout.str()
    saved = json.loads((pytester.path / ".slap" / "kept.json").read_text())
    assert [key.partition("::")[2] for key in saved["tests"]] == ["test_it"]


def test_outputs_leave_no_temporary_files_and_a_link_is_written_through(pytester):
    pytester.makepyfile(ONE_TEST)
    result = pytester.runpytest("-p", "no:cacheprovider", "--slap-json=r.json")
    assert result.ret == pytest.ExitCode.OK
    assert json.loads((pytester.path / "r.json").read_text())["tests"]
    assert _leftovers(pytester.path) == []
    # a symbolic link (as /dev/stdout is) is written through, and stays a link
    (pytester.path / "target.json").write_text("")
    (pytester.path / "link.json").symlink_to(pytester.path / "target.json")
    linked = pytester.runpytest("-p", "no:cacheprovider", "--slap-json=link.json")
    assert linked.ret == pytest.ExitCode.OK
    assert (pytester.path / "link.json").is_symlink()
    assert json.loads((pytester.path / "target.json").read_text())["tests"]
    assert _leftovers(pytester.path) == []


def test_temporary_names_cannot_be_taken_first_by_a_planted_link(tmp_path, monkeypatch):
    """Links planted at every name the writer might use (the old predictable ones, and the random one it draws)
    lead to a victim file: it stays as it was, and the output is a regular file of its own."""
    from pytest_memaslap.output import files

    victim = tmp_path / "victim"
    victim.write_text("precious")
    out = tmp_path / "out" / "r.json"
    out.parent.mkdir()
    monkeypatch.setattr(files.secrets, "token_hex", lambda n: "planted")
    for name in (f"r.json.tmp{os.getpid()}", ".r.json.planted.tmp", f".pytest-memaslap-probe-{os.getpid()}"):
        (out.parent / name).symlink_to(victim)
    probe = tmp_path / "probe-dir"
    probe.mkdir()
    (probe / ".pytest-memaslap-probe-planted.tmp").symlink_to(victim)
    with pytest.raises(FileExistsError, match="no free temporary name"):
        files.write_json(str(out), {"tests": {}})  # (every random name taken: refused, nothing followed)
    assert "cannot be written" in (files.directory_problem(str(probe)) or "")
    monkeypatch.undo()
    files.write_json(str(out), {"tests": {}})
    assert files.directory_problem(str(probe)) is None
    assert victim.read_text() == "precious"
    assert out.is_file() and not out.is_symlink() and json.loads(out.read_text()) == {"tests": {}}
    assert {p.name for p in out.parent.iterdir() if not p.is_symlink()} == {"r.json"}

"""memaslap's -F configuration file, from the slap mark (config=) and from --slap-config."""

from __future__ import annotations

import json
import re

import pytest

from pytest_memaslap.model.memaslap_file import parse_config
from pytest_memaslap.model.workload import WorkloadError

MEMASLAP_SAMPLE = """\
#comments should start with '#'
key
128 128 1
#value
value
2048 2048 1
cmd
0    0.1
1.0 0.9
"""


def test_memaslaps_own_sample_reads_as_workload_arguments():
    assert parse_config(MEMASLAP_SAMPLE) == {
        "key_size": [(128, 128, 1.0)],
        "value_size": [(2048, 2048, 1.0)],
        "commands": {"set": 0.1, "get": 0.9},
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "key\n16 100\n",
            "line 2: '16 100' in section 'key': expected 3 finite numbers (start_len end_len proportion)",
        ),
        ("64 64 1\n", "line 1: '64 64 1' comes before any section; sections: key, value, cmd"),
        ("cmd\n2 1\n", "cmd_type 2 is not one memaslap knows; 0 is set, 1 is get"),
        ("value\n1.5 10 1\n", "lengths are whole numbers of bytes; got 1.5"),
        ("# nothing\n", "no key, value or cmd section"),
    ],
)
def test_bad_files_name_the_line_and_what_is_allowed(text, message):
    with pytest.raises(WorkloadError, match=re.escape(message)):
        parse_config(text, "bad.cfg")


def test_mark_config_with_mark_arguments_winning(pytester):
    pytester.makefile(".cfg", memaslap=MEMASLAP_SAMPLE.replace("128 128 1", "32 32 1"))
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.slap(config="memaslap.cfg", value_size=100, ops=500, duration=None, connections=2, keys=100)
        def test_from_file(slap):
            result = slap()
            assert result.workload.commands == (("set", 0.1), ("get", 0.9))
            assert result.workload.key_size == ((32, 32, 1.0),)
            assert result.workload.value_size == ((100, 100, 1.0),)
            assert result.ops == 500
        """
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_slap_config_option_applies_to_every_test(pytester):
    pytester.makefile(".cfg", memaslap=MEMASLAP_SAMPLE.replace("2048 2048 1", "64 64 1"))
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.slap(ops=300, duration=None, connections=2, keys=100, commands={"get": 1.0})
        def test_overridden(slap):
            slap()
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--slap-config=memaslap.cfg", "--slap-json=out.json")
    result.assert_outcomes(passed=1)
    (entry,) = json.loads((pytester.path / "out.json").read_text())["tests"].values()
    assert entry["workload"]["commands"] == {"set": 0.1, "get": 0.9}
    assert entry["workload"]["value_size"] == [[64, 64, 1.0]]


def test_a_missing_config_file_fails_collection_naming_it(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.slap(config="nowhere.cfg")
        def test_x(slap):
            slap()
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*nowhere.cfg*cannot read the memaslap configuration file*"])
    assert result.ret == pytest.ExitCode.INTERRUPTED


def test_a_file_of_nans_or_not_text_names_the_file(tmp_path):
    from pytest_memaslap.model.memaslap_file import load_config, parse_config

    with pytest.raises(WorkloadError, match=r"line 2: '10 20 nan' in section 'value': expected 3 finite numbers"):
        parse_config("value\n10 20 nan\n")
    binary = tmp_path / "memaslap.cnf"
    binary.write_bytes(b"key\n\xff\xfe 1 1\n")
    with pytest.raises(WorkloadError, match=r"memaslap.cnf': not a memaslap configuration file \(not UTF-8 text"):
        load_config(binary)

"""HdrHistogram interop: our histograms encoded by hand, decoded by the ``hdrhistogram`` package, bucket for bucket."""

from __future__ import annotations

import json
import random

from hdrh.histogram import HdrHistogram  # (the dev extra: HdrHistogram's own Python port, the judge here)
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_memaslap.output.hdr import encode, log_name
from pytest_memaslap.stats.histogram import BUCKET_COUNT, Histogram, bucket_index


@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.integers(0, 2**48), min_size=1, max_size=300))
def test_every_bucket_decodes_to_the_same_count(values):
    histogram = Histogram()
    for value in values:
        histogram.record(value)
    decoded = HdrHistogram.decode(encode(histogram.counts))
    assert decoded.counts_len == BUCKET_COUNT and decoded.get_total_count() == histogram.total
    for index, count in histogram.to_sparse().items():
        assert decoded.get_count_at_index(index) == count


def test_percentiles_land_in_the_same_buckets():
    histogram = Histogram()
    rng = random.Random(3)
    for _ in range(20_000):
        histogram.record(int(rng.lognormvariate(11, 1.5)))
    decoded = HdrHistogram.decode(encode(histogram.to_sparse()))
    for q in (50.0, 90.0, 99.0, 99.9, 99.99, 100.0):
        assert bucket_index(decoded.get_value_at_percentile(q)) == bucket_index(int(histogram.percentile(q)))


def test_a_run_writes_a_log_per_call_that_hdr_tools_read(pytester):
    """Per-second totals and per-command whole-phase intervals: their counts are the JSON's."""
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.slap(duration="2.2s", connections=2, keys=500, commands={"get": 0.8, "set": 0.2})
        def test_mix(slap):
            slap()
        """
    )
    pytester.runpytest("-p", "no:cacheprovider", "--slap-hdr=hdr", "--slap-json=out.json").assert_outcomes(passed=1)
    ((test_key, test),) = json.loads((pytester.path / "out.json").read_text())["tests"].items()
    log = (pytester.path / "hdr" / log_name(test_key)).read_text().splitlines()
    assert log[0] == "#[Histogram log format version 1.3]"
    assert log[4] == '"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"'
    intervals: dict[str, list[int]] = {}
    for line in log[5:]:
        tag, start, length, highest, encoded = line.split(",")
        decoded = HdrHistogram.decode(encoded)
        intervals.setdefault(tag.removeprefix("Tag="), []).append(decoded.get_total_count())
        assert float(highest) >= decoded.get_max_value() / 1e6 * 0.99  # (ms)
    assert intervals["total"] == [p["ops"] for p in test["timeline"] if p["ops"]]
    assert intervals["get"] == [test["commands"]["get"]["ops"]] and intervals["set"] == [test["commands"]["set"]["ops"]]


def test_an_unwritable_hdr_folder_is_refused_before_any_load(pytester):
    pytester.makepyfile("def test_nothing(): pass")
    (pytester.path / "afile").write_text("")
    result = pytester.runpytest("-p", "no:cacheprovider", "--slap-hdr=afile/sub")
    result.stderr.fnmatch_lines(["*--slap-hdr=afile/sub: the folder * is not a folder*"])


def test_a_key_too_long_for_a_file_name_gets_a_short_stable_name(tmp_path):
    """A 5,000-character parametrize id: its log is written under a hashed name, and the other logs too."""
    long_key = "tests/test_x.py::test_y[" + "a" * 5000 + "]"
    name = log_name(long_key)
    assert len(name) < 200 and name == log_name(long_key) and name != log_name(long_key[:-2] + "b]")
    (tmp_path / name).write_text("fits")  # (a real file system takes it)

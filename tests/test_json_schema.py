"""The JSON document against its published schema (docs/json-schema.json): real documents, as runs write them."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema  # (the dev extra's)
from conftest import run_subprocess

pytest_plugins = ["pytester"]
SCHEMA = json.loads((Path(__file__).resolve().parent.parent / "docs" / "json-schema.json").read_text())
CALLS = """
import pytest

@pytest.mark.slap(duration="1s", connections=4, keys=500, commands={"get": 0.8, "set": 0.2})
@pytest.mark.slap_thresholds("errors == 0", "get.p99 < 1s", "server.evictions == 0")
def test_closed(slap):
    slap()

@pytest.mark.slap(duration="1s", connections=2, keys=500, rate="2k", probe_rate="200")
@pytest.mark.slap_thresholds("probe.p99 < 1s")
def test_open_with_a_probe(slap):
    slap()
"""


def _validate(document: dict) -> list[str]:
    validator = jsonschema.Draft202012Validator(SCHEMA)
    return [f"{error.json_path}: {error.message}" for error in validator.iter_errors(document)]


def test_the_schema_is_a_valid_schema():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_real_documents_follow_the_schema_and_a_broken_one_does_not(pytester):
    pytester.makepyfile(CALLS)
    result = pytester.runpytest("-p", "no:cacheprovider", "--slap-json=one.json")
    result.assert_outcomes(passed=2)
    document = json.loads((pytester.path / "one.json").read_text())
    assert _validate(document) == []
    probed = next(entry for key, entry in document["tests"].items() if "probe" in key)
    assert probed["probe"] is not None and probed["rate"] is not None  # (the optional sections, filled)
    broken = copy.deepcopy(document)
    del next(iter(broken["tests"].values()))["validity"]["independence"]
    assert any("independence" in problem for problem in _validate(broken))


def test_a_sharded_document_follows_the_schema(pytester):
    pytester.makepyfile(CALLS.split('@pytest.mark.slap(duration="1s", connections=2')[0])
    result = run_subprocess(pytester, "--slap-shards=2", "--slap-json=two.json")
    result.assert_outcomes(passed=2)
    document = json.loads((pytester.path / "two.json").read_text())
    (entry,) = document["tests"].values()
    assert entry["shards"] == 2 and len(entry["per_shard"]) == 2
    assert _validate(document) == []

"""Hooks that other plugins and conftests implement to extend pytest-memaslap.

Registered with ``pluginmanager.add_hookspecs`` when the plugin loads; they
run in the process that reports (the only one, or the xdist controller).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_memaslap.stats.outcome import CallOutcome


@pytest.hookspec
def pytest_memaslap_result(outcome: CallOutcome, config: pytest.Config) -> None:
    """A slap() call has been judged: export it (StatsD, Prometheus, a database) as soon as it is known.

    ``outcome.result`` is the merged result (every shard; the median round,
    carrying all rounds), ``outcome.verdicts`` the thresholds' verdicts and
    ``outcome.to_json()`` the call's entry in the JSON document. Called once
    per call, interrupted and failed calls included.
    """


@pytest.hookspec
def pytest_memaslap_update_json(document: dict[str, Any], config: pytest.Config) -> None:
    """The session's JSON document, before it is written (--slap-json) or saved (--slap-save): change it in place."""


@pytest.hookspec
def pytest_memaslap_update_machine_info(machine_info: dict[str, Any], config: pytest.Config) -> None:
    """What this run was measured on, before it is saved and compared: add to it or change it in place."""


@pytest.hookspec(firstresult=True)
def pytest_memaslap_compare_machine_info(
    baseline: dict[str, Any], current: dict[str, Any], config: pytest.Config
) -> list[str] | None:
    """Which differences between the baseline's machine and this one matter (e.g. ``["cores: 32 -> 2"]``).

    Return a list (empty: the machines count as the same) to decide for the
    plugin; None leaves it to the default (CPU, cores, memcached version, engine).
    """

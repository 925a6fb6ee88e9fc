"""A slap test's plan: its marks merged with the options into a workload, thresholds, a server and a search.

Made at collection (a bad argument fails collection, naming it), and again
by the ``slap`` fixture for a test collected otherwise.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from pytest_memaslap.model.capacity import CapacitySearch
from pytest_memaslap.model.keyspace import SHORTEST_PREFIX, check_key_size
from pytest_memaslap.model.memaslap_file import load_config
from pytest_memaslap.model.thresholds import ThresholdError, parse_all
from pytest_memaslap.model.workload import Workload, WorkloadError
from pytest_memaslap.plugin.options import server_config_from_mark
from pytest_memaslap.plugin.session import SlapPlan, SlapSession


def plan_for(item: pytest.Item, session: SlapSession) -> SlapPlan:
    """Merge the item's marks (closest wins) with the options; raises on any bad value."""
    slap_kwargs: dict[str, Any] = {}
    slap_marks = list(item.iter_markers("slap"))
    for mark in reversed(slap_marks):
        if mark.args:
            raise WorkloadError(f"slap mark: takes keyword arguments only; got positional {mark.args!r}")
        slap_kwargs.update(mark.kwargs)
    if "config" in slap_kwargs:  # memaslap's -F file, relative to the test's file; the mark's own arguments win
        config = slap_kwargs.pop("config")
        if not isinstance(config, (str, os.PathLike)):
            raise WorkloadError(f"config={config!r}: expected the path of a memaslap configuration file")
        slap_kwargs = {**load_config(item.path.parent / config), **slap_kwargs}
    trace = slap_kwargs.get("trace")
    if isinstance(trace, (str, os.PathLike)) and str(trace):  # a trace file, relative to the test's file
        slap_kwargs["trace"] = str(item.path.parent / trace)
    workload = Workload.from_args(slap_kwargs, also_allowed=("config",))
    workload = Workload.from_args(dict(session.settings.workload_overrides), base=workload)
    check_key_size(workload.key_size, workload.keys, SHORTEST_PREFIX)  # (at collection; the run checks its own)
    exprs: tuple[Any, ...] = ()
    for mark in item.iter_markers("slap_thresholds"):
        if mark.kwargs:
            raise ThresholdError(f"slap_thresholds mark: takes expressions only; got {mark.kwargs!r}")
        exprs += mark.args
    thresholds = parse_all(exprs, workload.measured_commands())
    unprobed = [t.expr for t in thresholds if t.command == "probe" and workload.probe_rate is None]
    if unprobed:
        raise ThresholdError(f"threshold {unprobed[0]!r}: the workload has no probe; add probe_rate= (e.g. '1k')")
    unsampled = [t.expr for t in thresholds if t.command == "server" and session.settings.server_stats == "off"]
    if unsampled:
        raise ThresholdError(
            f"threshold {unsampled[0]!r}: the server's stats are not sampled (--slap-server-stats=off); "
            "use --slap-server-stats=on"
        )
    capacity = _capacity_search(item, workload, session.settings.capacity_step)
    if capacity is None and any(t.metric == "capacity" for t in thresholds):
        raise ThresholdError("threshold on capacity: it is measured by a capacity search; add a slap_capacity mark")
    server = session.settings.server
    for mark in reversed(list(item.iter_markers("memcached"))):
        if mark.args:
            raise WorkloadError(f"memcached mark: takes keyword arguments only; got {mark.args!r}")
        server = server_config_from_mark(server, mark.kwargs)
    return SlapPlan(workload, thresholds, server, capacity)


def _capacity_search(item: pytest.Item, workload: Workload, step_s: float | None) -> CapacitySearch | None:
    """The item's slap_capacity mark (the closest), validated; None without one."""
    mark = item.get_closest_marker("slap_capacity")
    if mark is None:
        return None
    if mark.args:
        raise WorkloadError(f"slap_capacity mark: takes keyword arguments only; got positional {mark.args!r}")
    if workload.open_loop:
        raise WorkloadError(
            "slap_capacity: the search sets the rate of each step; remove rate= and stages= from the slap mark"
        )
    if workload.transport == "udp":
        raise WorkloadError("slap_capacity: searches run open loop over TCP; remove transport='udp'")
    if workload.trace is not None:
        raise WorkloadError("slap_capacity: searches a synthetic mix's rates; a trace replay keeps its own clock")
    return CapacitySearch.from_args(mark.kwargs, workload.measured_commands(), step_s)

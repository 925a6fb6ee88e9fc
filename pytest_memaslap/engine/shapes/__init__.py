"""Load shapes: what a shard does between its preload and its cleanup, one module a shape.

A shape implements ``base.Shape`` (``load`` and ``keep``) against the
runner's ``base.Run``; ``shape_for`` picks the workload's. Adding one: its
arguments in ``model/workload.py`` (validated there), its module here, a
line in ``shape_for``, and whatever it adds to the result in ``output/``.
"""

from __future__ import annotations

from pytest_memaslap.engine.shapes.base import Run, Shape
from pytest_memaslap.engine.shapes.capacity import CapacityShape
from pytest_memaslap.engine.shapes.closed import ClosedLoop
from pytest_memaslap.engine.shapes.open_loop import OpenLoop
from pytest_memaslap.engine.shapes.replay import TraceReplay
from pytest_memaslap.engine.shapes.steps import ConnectionSteps
from pytest_memaslap.model.capacity import CapacitySearch
from pytest_memaslap.model.workload import Workload

__all__ = ["CapacityShape", "ClosedLoop", "ConnectionSteps", "OpenLoop", "Run", "Shape", "TraceReplay", "shape_for"]


def shape_for(workload: Workload, capacity: CapacitySearch | None = None) -> Shape:
    """The shape a run takes: a capacity search when asked, else as the workload says."""
    if capacity is not None:
        return CapacityShape(capacity)
    if workload.trace is not None:
        return TraceReplay()
    if workload.open_loop:
        return OpenLoop()
    if workload.step_count() > 1:
        return ConnectionSteps()
    return ClosedLoop()

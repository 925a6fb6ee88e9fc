"""The summary's columns, chosen and fitted to the terminal: a compact default, ``--slap-columns`` to pick.

Each column has a name the option takes, a header and its cells (the
terminal's ``summary_rows`` make them). The default set is what a first
look needs; columns the user did not name are dropped, least needed first,
and the test's name is shortened in its middle, until the table fits the
terminal's width. What a cell leaves out is under the table or in the JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

# every column, in the summary's order: (name, what it is); "latency" is get's latency at each --slap-percentiles
COLUMNS = (
    ("shards", "how many shards ran the call"),
    ("duration", "the measured phase's seconds"),
    ("ops", "requests answered in the measured phase"),
    ("ops_per_sec", "throughput (an open loop: of its target)"),
    ("latency", "get's latency at each --slap-percentiles, µs"),
    ("max", "get's longest latency, µs"),
    ("set", "set's latency at the highest --slap-percentiles, µs"),
    ("hit_ratio", "get's hit ratio"),
    ("errors", "errors (requests never answered among them)"),
    ("mb_per_sec", "bytes sent and received per second, MB"),
    ("server_cpu", "the server's CPU µs per request (--slap-server-stats)"),
    ("thresholds", "the thresholds' verdict"),
)
NAMES = tuple(name for name, _ in COLUMNS)
DEFAULT = ("ops_per_sec", "latency", "set", "errors", "thresholds")
# dropped first when the table is too wide for the terminal (the ones the user did not name)
DROP_ORDER = ("mb_per_sec", "duration", "ops", "shards", "max", "hit_ratio", "server_cpu", "set", "errors")
SHORTEN_BEFORE = "server_cpu"  # the test's name is shortened (to TEST_WIDTH_BEFORE_DROPPING) before this goes
TEST_WIDTH_BEFORE_DROPPING = 50
MIN_TEST_WIDTH = 40  # (a name up to this long is never shortened: it is what the row is about)
ELLIPSIS = "…"


class ColumnError(ValueError):
    """A --slap-columns value that names no column; the message lists the names."""


def parse_columns(text: str) -> tuple[str, ...]:
    """``--slap-columns``: a comma list of column names, or ``all``."""
    if text.strip() == "all":
        return NAMES
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [name for name in names if name not in NAMES]
    if unknown or not names:
        raise ColumnError(
            f"--slap-columns={text!r}: unknown column {', '.join(map(repr, unknown)) or '(none given)'}; "
            f"allowed: {', '.join(NAMES)}, or all"
        )
    return tuple(name for name in NAMES if name in names)  # (in the summary's order)


def fit(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    names: Sequence[str],
    chosen: Sequence[str],
    width: int,
    render: Callable[[Sequence[str], Sequence[Sequence[str]]], str],
) -> tuple[list[str], list[list[str]]]:
    """The columns and cells that fit ``width``: ``names`` are the columns' names (the test's is "test").
    Until the rendered table fits, the columns not in ``chosen`` are dropped in ``DROP_ORDER``, the test's
    name shortened in its middle to ``TEST_WIDTH_BEFORE_DROPPING`` before the last few go, and then down to
    ``MIN_TEST_WIDTH``. ``render(header, rows)`` gives the table's text."""
    keep = list(range(len(names)))
    longest = max((len(row[names.index("test")]) for row in rows), default=0) if "test" in names else 0

    def table_width(test_width: int | None = None) -> int:
        cells = [[_shorten(row[i], test_width) if names[i] == "test" else row[i] for i in keep] for row in rows]
        text = render([header[i] for i in keep], cells)
        return max((len(line) for line in text.splitlines()), default=0)

    def shortened(floor: int) -> int | None:
        """The test column's width that fits, but not under ``floor`` (None: as it is)."""
        excess = table_width() - width
        return None if excess <= 0 or longest <= floor else max(floor, longest - excess)

    test_width = None
    for name in DROP_ORDER:
        if name == SHORTEN_BEFORE:  # (a shorter test name is better than fewer figures, down to a point)
            test_width = shortened(TEST_WIDTH_BEFORE_DROPPING)
        if table_width(test_width) <= width:
            break
        if name in names and name not in chosen and names.index(name) in keep:
            keep.remove(names.index(name))
    if table_width(test_width) > width:
        test_width = shortened(MIN_TEST_WIDTH)
    cells = [[_shorten(row[i], test_width) if names[i] == "test" else row[i] for i in keep] for row in rows]
    return [header[i] for i in keep], cells


def _shorten(text: str, width: int | None) -> str:
    """``text`` in at most ``width`` characters, its middle replaced by an ellipsis (the file and the test's
    name, its two ends, stay readable)."""
    if width is None or len(text) <= width:
        return text
    tail = (width - 1) * 2 // 3
    return text[: width - 1 - tail] + ELLIPSIS + text[len(text) - tail :]

"""``slap-compare OLD NEW``: compare two saved runs offline, as ``--slap-compare`` does in a session."""

from __future__ import annotations

import argparse
import sys

from pytest_memaslap.model.allowances import AllowanceError, parse_allowances
from pytest_memaslap.output.baseline import BaselineError, compare, load, resolve
from pytest_memaslap.output.terminal import comparison_table


def main(argv: list[str] | None = None) -> int:
    """Print the comparison table; exit 1 on a regression past ``--fail`` (on the same machine, or ``--strict``;
    an inconclusive gated metric too with ``--inconclusive=fail``), 2 on bad input."""
    parser = argparse.ArgumentParser(
        prog="slap-compare", description="Compare two pytest-memaslap runs saved with --slap-save or --slap-json."
    )
    parser.add_argument("old", help="the baseline: a saved run's NAME (in --storage) or a file path")
    parser.add_argument("new", help="the run to judge: a NAME or a file path")
    parser.add_argument("--storage", default=".slap", help="folder of saved runs (default .slap)")
    parser.add_argument("--fail", default="", help="allowances, e.g. 'ops_per_sec:-5%%,get.p99:+10%%'")
    parser.add_argument("--strict", action="store_true", help="fail on regressions even when the runs' machines differ")
    parser.add_argument(
        "--inconclusive",
        choices=("pass", "fail"),
        default="pass",
        help="what a gated metric whose interval straddles its allowance does (default pass, with a note)",
    )
    args = parser.parse_args(argv)
    try:
        allowances = parse_allowances(args.fail, "--fail")
        old = load(resolve(args.old, args.storage))
        new = load(resolve(args.new, args.storage))
    except (BaselineError, AllowanceError) as exc:
        print(f"slap-compare: {exc}", file=sys.stderr)
        return 2
    comparison = compare(old, new, allowances, strict=args.strict, inconclusive_fails=args.inconclusive == "fail")
    print(comparison_table(comparison))
    if comparison.regressions:
        tests = sorted({row.test for row in comparison.regressions})
        print(f"\nregressions past the allowances in: {', '.join(tests)}")
    return 1 if comparison.failing else 0


if __name__ == "__main__":
    sys.exit(main())

"""``slap-capture HOST:PORT``: a workload that reproduces a live server's, read from it without changing it.

It samples the server's ``stats`` twice, ``--window`` seconds apart (the
command mix of that window; ``--window 0``: the totals since the server
started), and reads its items' key and value sizes through the LRU crawler
(``lru_crawler metadump all``: metadata only, at most ``--max-items``, for
at most ``--timeout`` seconds). It writes the mark's arguments as JSON
(``OUT.json``) and a memaslap ``-F`` file (``OUT.cfg``), and prints how to
use them. Exit status: 0 written, 1 the server could not be read, 2 bad
options.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from pytest_memaslap.memcached.crawler import CrawlerError, crawl, server_stats
from pytest_memaslap.memcached.server import ServerError, parse_address
from pytest_memaslap.model.capture import ItemSizes, command_mix, hit_ratio, memaslap_config, workload_arguments
from pytest_memaslap.model.workload import Workload, WorkloadError
from pytest_memaslap.output.files import file_problem, write_json, write_text

CONNECT_TIMEOUT_S = 5.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="slap-capture", description=__doc__.splitlines()[0])
    parser.add_argument("server", help="the live memcached server, HOST:PORT")
    parser.add_argument("-o", "--out", default="captured", help="where to write: OUT.json and OUT.cfg")
    parser.add_argument("--window", type=float, default=5.0, help="seconds between the two stats samples (0: totals)")
    parser.add_argument("--max-items", type=int, default=1_000_000, help="items read at most (default 1,000,000)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds the crawl may take at most")
    args = parser.parse_args(argv)
    try:
        host, port = parse_address(args.server)
    except ServerError as exc:
        parser.error(str(exc))
    if args.window < 0 or args.max_items < 1 or args.timeout <= 0:
        parser.error("--window must be 0 or more, --max-items 1 or more, --timeout above 0")
    paths = [Path(f"{args.out}.json"), Path(f"{args.out}.cfg")]
    for path in paths:
        problem = file_problem(str(path))
        if problem:
            parser.error(f"-o/--out: {problem}")
    try:
        return _capture(host, port, args, paths)
    except (CrawlerError, OSError) as exc:
        print(f"slap-capture: {host}:{port}: {exc}", file=sys.stderr)
        return 1


def _capture(host: str, port: int, args: argparse.Namespace, paths: list[Path]) -> int:
    before = server_stats(host, port, CONNECT_TIMEOUT_S) if args.window else None
    started = time.monotonic()
    sizes = ItemSizes()
    for item in crawl(host, port, CONNECT_TIMEOUT_S, args.max_items, args.timeout):
        sizes.add(item.key_size, item.value_size, item.ttl_s)
    crawled_s = time.monotonic() - started
    ended_by = "--max-items" if sizes.items >= args.max_items else "--timeout" if crawled_s >= args.timeout else None
    time.sleep(max(0.0, args.window - crawled_s))  # (the crawl counts toward the window)
    after = server_stats(host, port, CONNECT_TIMEOUT_S)
    mix = command_mix(before, after)
    try:
        arguments = workload_arguments(mix, sizes)
        Workload.from_args(arguments)  # (what is written is a workload the plugin takes)
    except (ValueError, WorkloadError) as exc:
        print(f"slap-capture: {host}:{port}: {exc}", file=sys.stderr)
        return 1
    curr_items = int(after.get("curr_items", "0"))
    document = {
        "workload": arguments,
        "captured_from": {
            "server": f"{host}:{port}",
            "version": after.get("version"),
            "window_s": args.window,
            "items_read": sizes.items,
            "items_on_server": curr_items,
            "stopped_by": ended_by,  # (None: the crawl went through every LRU)
            "hit_ratio": hit_ratio(before, after),
            "ttls": dict(sizes.ttls),
        },
    }
    write_json(str(paths[0]), document)
    write_text(str(paths[1]), memaslap_config(mix, arguments))
    source = f"over {args.window:g} s" if args.window else "since the server started"
    share = f" (of {curr_items:,}: {ended_by} ended the crawl)" if ended_by else ""
    if not ended_by and sizes.items != curr_items:  # (items written, evicted or locked while it ran)
        share = f" ({curr_items:,} now on the server: items change while the crawler walks)"
    print(f"read {sizes.items:,} items{share} and the command mix {source}: {mix or 'no commands'}")
    print(f"wrote {paths[0]} (mark arguments) and {paths[1]} (memaslap -F)")
    print(f'use: @pytest.mark.slap(**json.loads(Path("{paths[0]}").read_text())["workload"])')
    print(f"  or: @pytest.mark.slap(config={str(paths[1])!r}), or memaslap-py -F {paths[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

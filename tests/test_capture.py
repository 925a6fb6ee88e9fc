"""slap-capture: a live server's mix and item sizes become a workload, read without changing the server."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pytest_memaslap import Target, Workload, run_shard
from pytest_memaslap.memcached.crawler import crawl
from pytest_memaslap.memcached.server import ServerConfig, start_server
from pytest_memaslap.model.capture import ItemSizes, command_mix, memaslap_config, value_range, workload_arguments
from pytest_memaslap.model.memaslap_file import parse_config

CAPTURE = [sys.executable, "-m", "pytest_memaslap.cli.capture"]
UNCHANGED = ("cmd_get", "cmd_set", "cmd_touch", "curr_items", "total_items", "delete_hits", "delete_misses")


def test_value_sizes_are_kept_in_log_linear_ranges():
    assert value_range(1) == (1, 1) and value_range(15) == (15, 15)
    assert value_range(16) == (16, 19) and value_range(19) == (16, 19) and value_range(20) == (20, 23)
    assert value_range(1000) == (896, 1023) and value_range(1024) == (1024, 1279)
    for size in range(1, 5000):
        low, high = value_range(size)
        assert low <= size <= high


def test_the_mix_comes_from_the_counters_growth_and_a_cas_is_not_a_set():
    before = {"cmd_get": "100", "cmd_set": "10", "cas_hits": "0", "delete_hits": "5"}
    after = {"cmd_get": "190", "cmd_set": "20", "cas_hits": "5", "cas_misses": "0", "delete_hits": "5"}
    assert command_mix(before, after) == {"get": 0.9, "set": 0.05, "cas": 0.05}
    assert command_mix(None, {"cmd_get": "3", "cmd_set": "1"}) == {"get": 0.75, "set": 0.25}
    assert command_mix(before, before) == {}


def test_sizes_become_a_workload_and_a_memaslap_file_that_read_back():
    sizes = ItemSizes()
    for i in range(1000):
        sizes.add(30 + i % 3, 100 + i, None if i % 2 else 60)
    arguments = workload_arguments({"get": 0.9, "set": 0.1}, sizes)
    workload = Workload.from_args(arguments)
    assert workload.keys == 1000 and {low for low, _, _ in workload.key_size} == {30, 31, 32}
    assert min(low for low, _, _ in workload.value_size) == 96 and max(h for _, h, _ in workload.value_size) == 1279
    config = parse_config(memaslap_config({"get": 0.9, "set": 0.1}, arguments))
    assert config["commands"] == {"set": pytest.approx(0.1), "get": pytest.approx(0.9)}
    assert [s[:2] for s in config["key_size"]] == [(30, 30), (31, 31), (32, 32)]
    with pytest.raises(ValueError, match="no item was read"):
        workload_arguments({}, ItemSizes())


def _stats(server) -> dict[str, int]:
    from pytest_memaslap.memcached.crawler import server_stats

    return {k: int(v) for k, v in server_stats(server.host, server.port, 5).items() if v.isdigit()}


def test_a_capture_reproduces_a_loads_sizes_and_mix_and_changes_nothing(own_server, tmp_path):
    workload = Workload.from_args(
        {
            "keys": 2_000,
            "key_size": 40,
            "value_size": [(100, 200, 0.5), (3000, 4000, 0.5)],
            "commands": {"get": 0.75, "set": 0.25},
            "ops": 20_000,
            "duration": None,
            "connections": 4,
        }
    )
    result = run_shard(workload, Target(own_server.host, own_server.port), "cap:")
    before = _stats(own_server)
    out = tmp_path / "w"
    done = subprocess.run(
        [*CAPTURE, own_server.address, "-o", str(out), "--window", "0"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    after = _stats(own_server)
    assert {k: after[k] for k in UNCHANGED} == {k: before[k] for k in UNCHANGED}  # read-only
    document = json.loads((out.with_suffix(".json")).read_text())
    captured = document["workload"]
    assert captured["keys"] == 2_000 and document["captured_from"]["items_read"] == 2_000
    assert captured["key_size"] == [[40, 40, 1.0]]
    small = sum(share for low, high, share in captured["value_size"] if high <= 223)  # (200's range: 192-223)
    large = sum(share for low, high, share in captured["value_size"] if low >= 2560)  # (3000's: 2560-3071)
    assert small + large == pytest.approx(1.0) and small == pytest.approx(0.5, abs=0.05)
    assert all(96 <= low and high <= 4095 for low, high, _ in captured["value_size"])
    commands = result.measured.commands
    sets = commands["set"].ops + result.phases["preload"].ops  # (totals since start: the preload's sets too)
    gets = commands["get"].ops
    assert captured["commands"]["set"] == pytest.approx(sets / (sets + gets), abs=1e-3)
    assert document["captured_from"]["ttls"] == {"none": 2_000}
    assert "memaslap -F" in done.stdout and Workload.from_args(captured).keys == 2_000
    assert parse_config(out.with_suffix(".cfg").read_text())["key_size"] == [(40, 40, 1.0)]


def test_the_crawl_is_bounded_in_items(own_server, tmp_path):
    workload = Workload.from_args({"keys": 500, "ops": 1, "duration": None, "connections": 1, "value_size": 10})
    run_shard(workload, Target(own_server.host, own_server.port), "cb:")
    items = list(crawl(own_server.host, own_server.port, 5, max_items=100, deadline_s=30))
    assert len(items) == 100 and all(item.value_size == 10 for item in items)
    out = tmp_path / "w"
    command = [*CAPTURE, own_server.address, "-o", str(out), "--window", "0", "--max-items", "100"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "(of 500: --max-items ended the crawl)" in done.stdout
    captured_from = json.loads(out.with_suffix(".json").read_text())["captured_from"]
    assert captured_from["items_read"] == 100 and captured_from["stopped_by"] == "--max-items"


def test_a_server_whose_crawler_is_off_is_refused_with_the_command_that_enables_it(no_new_memcached, tmp_path):
    server = start_server(ServerConfig(threads=1, memory_mb=16, extra_args=("-o", "no_lru_crawler")))
    try:
        done = subprocess.run(
            [*CAPTURE, server.address, "-o", str(tmp_path / "w")], capture_output=True, text=True, timeout=60
        )
    finally:
        server.stop()
    assert done.returncode == 1
    assert "LRU crawler" in done.stderr and "is off" in done.stderr and "'lru_crawler enable'" in done.stderr
    assert not list(tmp_path.iterdir())  # nothing written


def test_bad_options_are_one_usage_error(tmp_path):
    done = subprocess.run([*CAPTURE, "nohost"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "HOST:PORT" in done.stderr
    done = subprocess.run([*CAPTURE, "127.0.0.1:1", "--max-items", "0"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--max-items" in done.stderr
    done = subprocess.run([*CAPTURE, "127.0.0.1:1", "-o", str(tmp_path / "w")], capture_output=True, text=True)
    assert done.returncode == 1 and "127.0.0.1:1" in done.stderr

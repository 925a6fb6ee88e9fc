"""Multi-gets (division=N) and verified gets (verify=P) against a real memcached."""

from __future__ import annotations

import pytest

from pytest_memaslap import ShardPlan, Target, Workload, run_shard
from pytest_memaslap.memcached.server import ServerConfig, start_server
from pytest_memaslap.model.keyspace import build_keys
from pytest_memaslap.model.workload import WorkloadError
from pytest_memaslap.protocol import ascii

pytestmark = pytest.mark.usefixtures("hot_path")  # every test here runs on the compiled core and its twin


def test_multi_gets_ask_for_division_keys_each(no_new_memcached):
    server = start_server(ServerConfig(threads=2, memory_mb=64))
    try:
        workload = Workload.from_args(
            {"ops": 500, "duration": None, "connections": 2, "keys": 200, "division": 10, "commands": {"get": 1.0}}
        )
        before = server.stats()
        raw = run_shard(workload, Target(server.host, server.port), "mget:")
        after = server.stats()
    finally:
        server.stop()
    get = raw.measured.commands["get"]
    assert get.ops == 500 and get.hits == 500 and get.errors == 0  # every key was preloaded
    assert after["cmd_get"] - before["cmd_get"] == 500 * 10  # memcached counts each key
    assert after["get_hits"] - before["get_hits"] == 500 * 10


def test_a_multi_get_with_a_missing_key_is_a_miss():
    buf = b"VALUE a 0 1\r\nx\r\nVALUE b 0 2\r\nyz\r\nEND\r\n"
    assert ascii.parse_multi_get(buf, 0, 2) == (len(buf), ascii.HIT)
    assert ascii.parse_multi_get(buf, 0, 3) == (len(buf), ascii.MISS)
    assert ascii.parse_multi_get(buf[:-3], 0, 2) == (-1, ascii.ERROR)  # incomplete: wait for more


def test_verify_finds_values_that_differ_from_what_was_written(no_new_memcached):
    server = start_server(ServerConfig(threads=2, memory_mb=64))
    base = {"connections": 2, "keys": 100, "key_size": 32, "value_size": 64}
    try:
        target = Target(server.host, server.port)
        # write every key as the load writes it, then corrupt three values behind the load's back
        run_shard(Workload.from_args({**base, "ops": 1, "duration": None, "commands": {"get": 1.0}}), target, "ver:")
        keys = build_keys("ver:", range(100), ((32, 32, 1.0),), ShardPlan().rng(Workload.from_args(base), "keys"))
        client = server.client()
        for key in keys[:3]:
            assert client.get(key) is not None
            client.set(key, b"x" * 64)
        client.close()
        checked = Workload.from_args(
            {**base, "ops": 2000, "duration": None, "preload": False, "verify": 1.0, "commands": {"get": 1.0}}
        )
        raw = run_shard(checked, target, "ver:")
    finally:
        server.stop()
    get = raw.measured.commands["get"]
    assert raw.verify["checked"] == get.ops == 2000
    assert raw.verify["mismatches"] == get.errors > 0
    assert set(raw.verify["keys"]) <= {k.decode() for k in keys[:3]}


def test_verify_checks_only_its_proportion_and_passes_on_a_healthy_server(memcached_server, hot_path):
    workload = Workload.from_args({"ops": 4000, "duration": None, "connections": 2, "keys": 300, "verify": 0.25})
    raw = run_shard(workload, Target(memcached_server.host, memcached_server.port), f"ver2{hot_path}:")
    gets = raw.measured.commands["get"].ops
    assert raw.verify["mismatches"] == 0 and raw.measured.commands["get"].errors == 0
    assert 0.15 * gets < raw.verify["checked"] < 0.35 * gets


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"division": 101}, "division=101: at most 100 keys per get"),
        ({"verify": 1.5}, "verify=1.5: a proportion from 0 to 1"),
        ({"verify": 0.1, "commands": {"set": 1.0}}, "verify: applies to gets, and the command mix has none"),
        ({"verify": 0.1, "division": 4}, "verify: checks single-key gets"),
    ],
)
def test_bad_division_and_verify_are_explained(args, message):
    with pytest.raises(WorkloadError, match=message):
        Workload.from_args(args)


@pytest.mark.parametrize("protocol", ["ascii", "meta"])
def test_expired_keys_are_checked_to_miss(memcached_server, protocol, hot_path):
    workload = Workload.from_args(
        {
            "duration": "4s",
            "rate": "3k",
            "connections": 3,
            "keys": 1500,
            "commands": {"get": 0.9, "set": 0.1},
            "expire": 0.5,
            "expire_after": "1s",
            "protocol": protocol,
        }
    )
    raw = run_shard(workload, Target(memcached_server.host, memcached_server.port), f"exp{protocol}{hot_path}:")
    get = raw.measured.commands["get"]
    assert raw.verify["expired_checked"] > 50  # gets of keys whose 1 s TTL ran out, with 1.5 s to spare
    assert raw.verify["expired_returned"] == 0 and get.errors == 0
    assert get.misses >= raw.verify["expired_checked"]


def test_an_item_that_outlives_its_ttl_is_an_error_naming_the_key():
    from pytest_memaslap.engine.hot.slow import ExpiryBook, VerifyLog, expired_get_parser

    parse_expired_get = expired_get_parser(ascii)

    book, log = ExpiryBook(), VerifyLog()
    book.wrote(7, 0.0)
    book.deadlines[7] -= 10  # its TTL ran out long ago
    generation = book.expired(7)
    assert generation is not None
    hit = b"VALUE k 0 1\r\nx\r\nEND\r\n"
    assert parse_expired_get(hit, 0, (b"k", log, book, 7, generation)) == (len(hit), ascii.ERROR)
    assert log.expired_returned == 1 and log.expired_keys == ["k"]
    book.wrote(7, None)  # written again since the get was built: a value is no longer wrong
    assert parse_expired_get(hit, 0, (b"k", log, book, 7, generation)) == (len(hit), ascii.HIT)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"expire": 0.1, "commands": {"get": 0.5, "touch": 0.5}}, "expire: applies to sets"),
        ({"expire": 0.1, "commands": {"set": 0.5, "touch": 0.5}}, "touch would change which keys expire"),
        ({"expire_after": "1.5s"}, "expire_after='1.5s': whole seconds from 1 to 30 days"),
    ],
)
def test_bad_expire_settings_are_explained(args, message):
    with pytest.raises(WorkloadError, match=message):
        Workload.from_args(args)


@pytest.mark.parametrize(("overwrite", "low", "high"), [(1.0, 0, 0), (0.0, 1000, 1000), (0.5, 350, 650)])
def test_overwrite_sends_the_other_sets_to_new_keys_and_cleanup_deletes_them(
    own_server, overwrite, low, high, hot_path
):
    workload = Workload.from_args(
        {"ops": 1000, "duration": None, "connections": 2, "keys": 100, "commands": {"set": 1.0}, "overwrite": overwrite}
    )
    target = Target(own_server.host, own_server.port)
    run_shard(workload, target, f"ow{overwrite}{hot_path}:")
    fresh = own_server.stats()["curr_items"] - 100  # the preloaded keyspace, then the new keys
    assert low <= fresh <= high
    run_shard(workload, target, f"owc{overwrite}{hot_path}:", cleanup=True)
    assert own_server.stats()["curr_items"] == 100 + fresh  # the second run left nothing behind

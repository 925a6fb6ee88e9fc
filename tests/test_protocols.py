"""protocol="meta" and "binary": the same workloads over the other protocols, against a real memcached."""

from __future__ import annotations

import pytest

from pytest_memaslap import Target, Workload, run_shard

pytestmark = pytest.mark.usefixtures("hot_path")  # every test here runs on the compiled core and its twin

ALL_COMMANDS = ("get", "set", "delete", "add", "replace", "append", "prepend", "touch", "incr", "decr")


@pytest.mark.parametrize("protocol", ["meta", "binary"])
def test_every_command_gets_the_replies_it_should(own_server, protocol):
    mix = dict.fromkeys(ALL_COMMANDS, 0.1)
    workload = Workload.from_args(
        {"ops": 5000, "duration": None, "connections": 3, "keys": 300, "commands": mix, "protocol": protocol}
    )
    before = own_server.stats()
    raw = run_shard(workload, Target(own_server.host, own_server.port), f"{protocol}1:")
    after = own_server.stats()
    measured = raw.measured.commands
    assert set(measured) == set(ALL_COMMANDS) and sum(c.ops for c in measured.values()) == 5000
    assert all(c.errors == 0 for c in measured.values()), {n: c.errors for n, c in measured.items()}
    assert measured["set"].misses == 0 and measured["incr"].misses == 0 and measured["decr"].misses == 0
    assert after["incr_hits"] - before["incr_hits"] == measured["incr"].hits
    assert after["delete_hits"] - before["delete_hits"] == measured["delete"].hits
    assert after["get_hits"] - before["get_hits"] == measured["get"].hits
    assert after["touch_hits"] - before["touch_hits"] == measured["touch"].hits  # (meta: mg KEY T0 is a touch)


@pytest.mark.parametrize("protocol", ["meta", "binary"])
def test_multi_gets_and_verification(own_server, protocol):
    target = Target(own_server.host, own_server.port)
    base = {"duration": None, "connections": 2, "keys": 200, "commands": {"get": 1.0}, "protocol": protocol}
    before = own_server.stats()
    multi = run_shard(Workload.from_args({**base, "ops": 400, "division": 8}), target, f"{protocol}2:")
    get = multi.measured.commands["get"]
    assert get.ops == get.hits == 400
    assert own_server.stats()["get_hits"] - before["get_hits"] == 400 * 8
    checked = run_shard(Workload.from_args({**base, "ops": 1000, "verify": 1.0}), target, f"{protocol}3:")
    assert checked.verify["checked"] == 1000 and checked.verify["mismatches"] == 0


def test_the_mark_and_option_choose_the_protocol(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.slap(ops=1000, duration=None, connections=2, keys=100, protocol="meta")
        @pytest.mark.slap_thresholds("errors == 0", "get.hit_ratio == 1")
        def test_meta(slap):
            assert slap().workload.protocol == "meta"
        """
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
    result = pytester.runpytest("-p", "no:cacheprovider", "--slap-protocol=udp")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*protocol='udp': allowed: ascii, meta, binary*"])


@pytest.mark.parametrize("protocol", ["ascii", "meta", "binary"])
def test_cas_is_a_gets_then_a_cas_with_its_unique_and_contention_shows_as_misses(own_server, protocol):
    workload = Workload.from_args(
        {
            "ops": 3000,
            "duration": None,
            "connections": 4,
            "window": 2,
            "keys": 30,  # few keys, so concurrent read-modify-writes collide
            "commands": {"get": 0.5, "cas": 0.5},
            "protocol": protocol,
        }
    )
    before = own_server.stats()
    raw = run_shard(workload, Target(own_server.host, own_server.port), f"cas{protocol}:")
    after = own_server.stats()
    measured = raw.measured.commands
    cas, gets = measured["cas"], measured["gets"]
    assert sum(c.ops for c in measured.values()) == 3000  # a cas op's two requests both count
    assert cas.errors == gets.errors == 0 and gets.misses == 0
    # each gets hit sent its cas, but for those in flight when a connection's budget ran out (window 2 x 4)
    assert gets.ops - 2 * 4 <= cas.ops <= gets.ops
    moved = {name: after[name] - before[name] for name in ("cas_hits", "cas_badval", "cas_misses", "cmd_get")}
    assert moved["cas_hits"] == cas.hits and moved["cas_badval"] + moved["cas_misses"] == cas.misses
    assert moved["cmd_get"] == measured["get"].ops + gets.ops

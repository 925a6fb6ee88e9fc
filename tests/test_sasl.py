"""SASL: the load, the barrier, the probe and the stats/progress clients against a memcached started with -S.

The user database is a Cyrus sasldb made here with ``saslpasswd2`` (apt
``sasl2-bin``), and memcached is pointed at it through SASL_CONF_PATH.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_subprocess

from pytest_memaslap.memcached.control import BinaryClient
from pytest_memaslap.memcached.sasl import SaslCredentials, SaslError
from pytest_memaslap.memcached.server import ServerConfig, ServerError, connect_external, start_server

pytestmark = pytest.mark.skipif(shutil.which("saslpasswd2") is None, reason="saslpasswd2 (apt sasl2-bin) is needed")

USER, PASSWORD = "slapper", "s3cret-pass"
CREDENTIALS = SaslCredentials(USER, PASSWORD)


@pytest.fixture(scope="module")
def sasl_conf(tmp_path_factory) -> Path:
    """A sasldb with one user, and the memcached.conf that makes memcached use it with PLAIN."""
    where = tmp_path_factory.mktemp("sasl")
    subprocess.run(
        ["saslpasswd2", "-a", "memcached", "-c", "-p", "-f", str(where / "sasldb2"), USER],
        input=PASSWORD.encode(),
        check=True,
        capture_output=True,
        timeout=30,
    )
    (where / "memcached.conf").write_text(f"mech_list: plain\nsasldb_path: {where / 'sasldb2'}\n")
    return where


@pytest.fixture
def sasl_server(sasl_conf, no_new_memcached, monkeypatch):
    """memcached -S: nothing but authenticated binary requests (and ``version``) are answered."""
    monkeypatch.setenv("SASL_CONF_PATH", str(sasl_conf))
    server = start_server(ServerConfig(threads=2, memory_mb=64, extra_args=("-S",)), sasl=CREDENTIALS)
    try:
        yield server
    finally:
        server.stop()


def test_the_control_client_logs_in_and_reads_stats(sasl_server):
    stats = sasl_server.stats()
    assert stats["auth_cmds"] >= 1 and stats["auth_errors"] == 0
    assert sasl_server.item_size_max() == 1024 * 1024  # stats settings, over the binary protocol
    client = sasl_server.control()
    try:
        assert client.set("slap-sasl-key", b"value", expire=60)
        assert client.get_many(["slap-sasl-key", "slap-sasl-absent"]) == {"slap-sasl-key": b"value"}
    finally:
        client.close()
    with pytest.raises(ServerError, match="pymemcache does not speak"):
        sasl_server.client()


def test_a_wrong_password_or_a_server_without_sasl_is_named(sasl_server, own_server):
    wrong = SaslCredentials(USER, "not-the-password")
    with pytest.raises(ServerError, match=rf"SASL authentication as '{USER}' failed at {sasl_server.address}"):
        connect_external(sasl_server.address, allow_flush=False, sasl=wrong)
    with pytest.raises(ServerError, match="does not take SASL .*started without -S"):
        connect_external(own_server.address, allow_flush=False, sasl=CREDENTIALS)
    with pytest.raises(ServerError, match="started with -S answers nothing but .* pass --memcached-sasl-user"):
        connect_external(sasl_server.address, allow_flush=False, timeout=1)  # no credentials: ASCII goes unanswered
    assert "not-the-password" not in repr(wrong)
    client = BinaryClient((sasl_server.host, sasl_server.port), wrong, timeout=2)
    with pytest.raises(SaslError):
        client.stats()
    client.close()


SASL_TEST = """
import pytest

@pytest.mark.slap(ops=2000, duration=None, connections=4, keys=200, protocol="binary",
                  commands={"get": 0.8, "set": 0.1, "incr": 0.1}, verify=0.2)
@pytest.mark.slap_thresholds("errors == 0", "get.hit_ratio == 1")
def test_over_sasl(slap, memcached_server):
    result = slap()
    assert result.errors == 0
    assert memcached_server.stats()["curr_items"] >= 200
"""


def test_load_over_sasl_alone_sharded_and_with_progress(pytester, sasl_server, monkeypatch):
    pytester.makepyfile(SASL_TEST)
    before = sasl_server.stats()
    args = [f"--memcached={sasl_server.address}", f"--memcached-sasl-user={USER}"]
    monkeypatch.setenv("MEMCACHED_SASL_PASSWORD", PASSWORD)
    run_subprocess(pytester, *args).assert_outcomes(passed=1)
    # the barrier and the progress records speak binary with SASL too
    pytester.makepyfile(SASL_TEST.replace("ops=2000, duration=None", "duration=3"))
    sharded = run_subprocess(pytester, *args, "--slap-shards=2", "--slap-stat-freq=1")
    sharded.assert_outcomes(passed=2)
    sharded.stdout.fnmatch_lines(["*slap *::test_over_sasl: */3 s, * ops/s, *(last 1 s, 2 of 2 shards)*"])
    after = sasl_server.stats()
    assert after["auth_errors"] == before["auth_errors"] == 0
    assert after["auth_cmds"] - before["auth_cmds"] >= 4 + 2 * 2  # every load connection logged in


def test_sasl_refusals_are_clear(pytester, sasl_server, monkeypatch):
    pytester.makepyfile(SASL_TEST.replace('protocol="binary"', 'protocol="ascii"'))
    base = [f"--memcached={sasl_server.address}"]
    result = run_subprocess(pytester, *base, f"--memcached-sasl-user={USER}", f"--memcached-sasl-password={PASSWORD}")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*protocol='ascii': a memcached that requires SASL answers only the binary protocol*"])
    assert PASSWORD not in result.stdout.str() + result.stderr.str()

    monkeypatch.delenv("MEMCACHED_SASL_PASSWORD", raising=False)
    for args, message in (
        ([*base, f"--memcached-sasl-user={USER}"], "*no password; set MEMCACHED_SASL_PASSWORD*"),
        ([*base, "--memcached-sasl-password=x"], "*--memcached-sasl-password needs --memcached-sasl-user*"),
        ([f"--memcached-sasl-user={USER}"], "*--memcached-sasl-user is for servers given with --memcached*"),
        ([*base, f"--memcached-sasl-user={USER}", "--memcached-sasl-password=wrong"], "*SASL authentication as*"),
    ):
        result = run_subprocess(pytester, *args)
        assert result.ret != 0
        output = result.stdout.lines + result.stderr.lines
        pytest.LineMatcher(output).fnmatch_lines([message])
        assert "wrong" not in "\n".join(output).replace("--memcached-sasl-password=wrong", "")


def test_memaslap_py_logs_in_from_every_shard_process(sasl_server, monkeypatch):
    command = [sys.executable, "-m", "pytest_memaslap.cli.memaslap", "-s", sasl_server.address, "-c", "4", "-w", "50"]
    monkeypatch.setenv("MEMCACHED_SASL_PASSWORD", PASSWORD)
    done = subprocess.run(
        [*command, "-x", "2000", "-T", "2", "-B", "-S", "1s", f"--sasl-user={USER}"],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr
    assert re.search(r"^Run time: [0-9.]+s Ops: 2000 ", done.stdout, re.M), done.stdout
    refused = subprocess.run([*command, f"--sasl-user={USER}"], capture_output=True, text=True, timeout=90)
    assert refused.returncode == 2 and "answers only the binary protocol" in refused.stderr
    monkeypatch.setenv("MEMCACHED_SASL_PASSWORD", "wrong")
    failed = subprocess.run([*command, "-B", f"--sasl-user={USER}"], capture_output=True, text=True, timeout=90)
    assert failed.returncode == 1 and f"SASL authentication as '{USER}' failed" in failed.stderr

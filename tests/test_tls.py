"""TLS: the load, the barrier and the stats clients against a memcached started with -Z (certificates made here)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import run_subprocess

from pytest_memaslap.memcached.server import ServerConfig, start_server
from pytest_memaslap.memcached.tls import TLSConfig

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is needed to make certificates")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory) -> Path:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA."""
    where = tmp_path_factory.mktemp("tls")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=slap test CA",
             "-keyout", "ca.key", "-out", "ca.pem", cwd=where)  # fmt: skip
    (where / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for name, subject in (("server", "/CN=127.0.0.1"), ("client", "/CN=slap client")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", f"{name}.key",
                 "-out", f"{name}.csr", cwd=where)  # fmt: skip
        extra = ["-extfile", "san.ext"] if name == "server" else []
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-days", "2", "-out", f"{name}.pem", *extra, cwd=where)  # fmt: skip
    return where


@pytest.fixture
def tls_server(certificates, no_new_memcached):
    """memcached with -Z that requires a client certificate signed by the CA (ssl_verify_mode=3)."""
    c = certificates
    options = f"ssl_chain_cert={c / 'server.pem'},ssl_key={c / 'server.key'},ssl_ca_cert={c / 'ca.pem'}"
    config = ServerConfig(threads=2, memory_mb=64, extra_args=("-Z", "-o", f"{options},ssl_verify_mode=3"))
    context = TLSConfig(str(c / "ca.pem"), str(c / "client.pem"), str(c / "client.key")).context()
    server = start_server(config, tls=context)
    try:
        yield server
    finally:
        server.stop()


TLS_TEST = """
import pytest

@pytest.mark.slap(ops=2000, duration=None, connections=4, keys=200)
@pytest.mark.slap_thresholds("errors == 0", "get.hit_ratio == 1")
def test_over_tls(slap, memcached_server):
    assert slap().errors == 0  # (each shard sees its own share; the summary judges the whole)
    assert memcached_server.stats()["curr_items"] >= 200
"""


def test_load_over_tls_with_a_client_certificate_alone_and_sharded(pytester, certificates, tls_server):
    pytester.makepyfile(TLS_TEST)
    c = certificates
    args = [
        f"--memcached={tls_server.address}",
        "--memcached-tls",
        f"--memcached-tls-ca={c / 'ca.pem'}",
        f"--memcached-tls-cert={c / 'client.pem'}",
        f"--memcached-tls-key={c / 'client.key'}",
    ]
    run_subprocess(pytester, *args).assert_outcomes(passed=1)
    run_subprocess(pytester, *args, "--slap-shards=2").assert_outcomes(passed=2)  # the barrier speaks TLS too


def test_tls_failures_are_clear(pytester, certificates, tls_server):
    pytester.makepyfile(TLS_TEST)
    c = certificates
    base = [f"--memcached={tls_server.address}", "--memcached-tls"]
    no_cert = pytester.runpytest("-p", "no:cacheprovider", *base, f"--memcached-tls-ca={c / 'ca.pem'}")
    no_cert.assert_outcomes(errors=1)
    no_cert.stdout.fnmatch_lines([f"*--memcached={tls_server.address}: *"])
    wrong_ca = pytester.runpytest("-p", "no:cacheprovider", *base)  # the system's CAs do not know ours
    wrong_ca.assert_outcomes(errors=1)
    wrong_ca.stdout.fnmatch_lines(["*the TLS handshake with 127.0.0.1:* failed: CERTIFICATE_VERIFY_FAILED*"])
    missing = pytester.runpytest("-p", "no:cacheprovider", *base, "--memcached-tls-ca=/nowhere.pem")
    assert missing.ret == pytest.ExitCode.USAGE_ERROR
    missing.stderr.fnmatch_lines(["*--memcached-tls-ca='/nowhere.pem': no such file*"])
    alone = pytester.runpytest("-p", "no:cacheprovider", f"--memcached-tls-ca={c / 'ca.pem'}")
    assert alone.ret == pytest.ExitCode.USAGE_ERROR
    alone.stderr.fnmatch_lines(["*--memcached-tls-ca needs --memcached-tls*"])

"""SASL authentication (memcached started with ``-S``): PLAIN over the binary protocol.

A memcached with SASL on answers only the binary protocol, and only
``version`` before a connection has authenticated; an ASCII request gets no
answer at all. So every connection to such a server authenticates first:
the load's and the shards' barrier's (``engine.connect``), and the control
paths' (readiness probe, stats, flush, progress records: ``memcached.control``,
because pymemcache has no SASL). This module holds what they share: the
credentials, the auth packet and the check of its reply. The password never
appears in a repr, an error message or a report.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from pytest_memaslap.protocol import binary

PLAIN = b"PLAIN"
SASL_PASSWORD_ENV = "MEMCACHED_SASL_PASSWORD"  # where the password comes from when no option gives it


class SaslError(RuntimeError):
    """Authentication failed, or the server does not speak SASL; the message says which and where."""


@dataclass(frozen=True)
class SaslCredentials:
    """Who to authenticate as (``--memcached-sasl-user`` and its password)."""

    user: str
    password: str = field(repr=False)

    def auth_request(self) -> bytes:
        """A SASL_AUTH packet with the PLAIN mechanism: no authorization identity, the user, the password."""
        return binary.request(binary.SASL_AUTH, PLAIN, b"", b"\0" + self.user.encode() + b"\0" + self.password.encode())

    def check_reply(self, status: int, body: bytes, where: str) -> None:
        """Raise a clear SaslError unless the server answered the auth request with success."""
        if status == binary.OK:
            return
        said = body.decode(errors="replace").strip() or f"status 0x{status:04x}"
        if status == binary.UNKNOWN_COMMAND:
            raise SaslError(f"{where} does not take SASL ({said}): it was started without -S; drop the SASL user")
        raise SaslError(
            f"SASL authentication as {self.user!r} failed at {where} ({said}); "
            f"check the SASL user and its password ({SASL_PASSWORD_ENV} or the password option)"
        )


def credentials_from(
    user: str | None, password: str | None, user_flag: str, password_flag: str
) -> SaslCredentials | None:
    """The user and its password (the option, else the environment); errors name the options."""
    if not user:
        if password:
            raise SaslError(f"{password_flag} needs {user_flag}")
        return None
    if password is None:
        password = os.environ.get(SASL_PASSWORD_ENV)
    if password is None:
        raise SaslError(f"{user_flag}={user}: no password; set {SASL_PASSWORD_ENV} or pass {password_flag}")
    return SaslCredentials(user, password)


def workload_problem(protocol: str, transport: str) -> str | None:
    """Why a workload cannot run against a server that requires SASL, or None when it can."""
    if protocol != "binary":
        return (
            f"protocol={protocol!r}: a memcached that requires SASL answers only the binary protocol; "
            "use protocol='binary' (--slap-protocol=binary, memaslap-py -B)"
        )
    if transport != "tcp":
        return f"transport={transport!r}: SASL logs in a connection, and UDP has none; use transport='tcp'"
    return None


def unpack_reply_header(header: bytes) -> tuple[int, int, int, int, int]:
    """(opcode, key length, extras length, status, body length) of a reply header."""
    magic, opcode, key_length, extras_length, _, status, body, _, _ = binary.HEADER.unpack(header)
    if magic != binary.RESPONSE:
        raise SaslError(f"expected a binary protocol reply, got {header[:8]!r}")
    return opcode, key_length, extras_length, status, body

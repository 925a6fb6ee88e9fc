"""Opening the load's connections: TCP or TLS, then a SASL login when the endpoint has credentials.

Under SASL a load connection first runs ``Login``; once the server accepts, the
transport is handed to the load's own protocol (``transport.set_protocol``), so
the hot path never sees SASL. Stream connections (the shards' barrier) log in
with ``authenticate``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from pytest_memaslap.memcached.endpoint import Target
from pytest_memaslap.memcached.sasl import SaslCredentials, SaslError, unpack_reply_header

P = TypeVar("P", bound=asyncio.BaseProtocol)


async def authenticate(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, credentials: SaslCredentials, where: str
) -> None:
    """Authenticate a fresh stream connection (the caller bounds the wait)."""
    writer.write(credentials.auth_request())
    _, _, _, status, length = unpack_reply_header(await reader.readexactly(24))
    credentials.check_reply(status, await reader.readexactly(length), where)


class Login(asyncio.Protocol):
    """A connection's first protocol under SASL: sends the auth request, waits for its reply.

    Once ``done`` resolves the caller hands the transport to the load's own
    protocol (``transport.set_protocol``), so the hot path never sees SASL.
    """

    def __init__(self, credentials: SaslCredentials, where: str) -> None:
        self.credentials = credentials
        self.where = where
        self.buffer = b""
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(self.credentials.auth_request())  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) < 24 or self.done.done():
            return
        try:
            _, _, _, status, length = unpack_reply_header(self.buffer[:24])
            if len(self.buffer) < 24 + length:
                return
            if len(self.buffer) > 24 + length:
                raise SaslError(f"{self.where} sent more than the auth reply: {self.buffer[24 + length :][:40]!r}")
            self.credentials.check_reply(status, self.buffer[24:], self.where)
        except SaslError as exc:
            self.done.set_exception(exc)
            return
        self.done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(SaslError(f"{self.where} closed the connection while logging in (SASL)"))


async def open_streams(target: Target) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A stream connection, logged in under SASL (the caller bounds the wait)."""
    reader, writer = await asyncio.open_connection(**target.connect_args())
    if target.sasl is not None:
        try:
            await authenticate(reader, writer, target.sasl, str(target))
        except BaseException:
            writer.close()
            raise
    return reader, writer


async def connect(target: Target, factory: Callable[[], P]) -> P:
    """Open a load connection; under SASL it logs in first, then hands its transport to the protocol."""
    loop = asyncio.get_running_loop()
    credentials = target.sasl
    if credentials is None:
        _, protocol = await loop.create_connection(factory, **target.connect_args())
        return protocol
    transport, login = await loop.create_connection(lambda: Login(credentials, str(target)), **target.connect_args())
    try:
        await login.done
    except BaseException:
        login.done.cancel()  # (timed out: the closing connection must not set it any more)
        transport.close()
        raise
    protocol = factory()
    transport.set_protocol(protocol)
    protocol.connection_made(transport)
    return protocol

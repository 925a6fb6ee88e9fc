"""TLS to memcached (servers started with ``-Z``): the client context, built from the options' files.

One place turns ``--memcached-tls-ca/-cert/-key`` into an ``ssl.SSLContext``,
so the load connections, the shards' barrier, the readiness probe and the
pymemcache clients (stats, progress) all speak TLS alike. Every file is
checked before any load runs, with its option named in the error.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass


class TLSError(ValueError):
    """A TLS option is unusable; the message names it and why."""


@dataclass(frozen=True)
class TLSConfig:
    """Where the CA that signs the server's certificate is, and this client's certificate, if any."""

    ca: str | None = None
    cert: str | None = None
    key: str | None = None

    def context(self) -> ssl.SSLContext:
        for option, path in (("--memcached-tls-ca", self.ca), ("--memcached-tls-cert", self.cert)):
            if path is not None and not os.path.isfile(path):
                raise TLSError(f"{option}={path!r}: no such file")
        if self.key is not None and self.cert is None:
            raise TLSError("--memcached-tls-key needs --memcached-tls-cert (the certificate the key belongs to)")
        try:
            context = ssl.create_default_context(cafile=self.ca)
            if self.cert is not None:
                context.load_cert_chain(self.cert, self.key)
        except ssl.SSLError as exc:
            raise TLSError(f"TLS files: {exc.reason or exc} (CA {self.ca!r}, certificate {self.cert!r})") from None
        except OSError as exc:
            raise TLSError(f"TLS files: {exc.strerror or exc}") from None
        return context

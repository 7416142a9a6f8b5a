"""The narrow port between ``OdooClient`` and a wire protocol, and what the transports share.

A transport is one session with one Odoo server (XML-RPC, JSON-RPC through odoorpc, or JSON-2),
used by one thread. It raises:

- ``TransportFault`` when the call failed in transit (``sent`` says whether Odoo may have received
  it); the client decides whether to retry and what the failure means for the ledger;
- an ``OdooError`` subclass when Odoo answered with a fault (``OdooAuthenticationError`` for
  ``AccessDenied``, ``OdooAccessError``, ``OdooUserError``, ``OdooServerError``).

Every transport opens a new TCP connection for every request (Werkzeug closes each one anyway), so
a lost reply is never confused with a stale kept-alive socket, and splits the timeout in two:
``connect_timeout`` for the TCP connection and TLS handshake, ``read_timeout`` for each wait on the
socket afterwards. A failure while connecting is raised as ``ConnectFailed`` (or, for JSON-2, a
``TransportFault`` with ``sent=False``): nothing was sent.
"""

from __future__ import annotations

import http.client
import ssl
import urllib.request
from dataclasses import dataclass
from http.cookiejar import CookieJar
from typing import Any, Literal, Protocol

from creativeflow.adapters.odoo.errors import (
    OdooAccessError,
    OdooAuthenticationError,
    OdooError,
    OdooServerError,
    OdooUserError,
)

FaultKind = Literal["access_denied", "access_error", "user_error", "server_error"]


class RpcTransport(Protocol):
    """One Odoo session over one wire protocol. Not thread-safe: one per thread.

    ``needs_login`` is True when calls need a logged-in uid (XML-RPC and JSON-RPC pass
    ``db, uid, secret`` with every call); JSON-2 authenticates each request by its API key, so the
    client calls without logging in first and never logs in again on a refused key.
    """

    @property
    def needs_login(self) -> bool: ...

    def version(self) -> Any:
        """``common.version``: needs no login."""

    def login(self) -> int | None:
        """Check the configured credentials; the uid, or ``None`` when Odoo refuses them."""

    def execute_kw(self, model: str, method: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        """``model.method(*args, **kwargs)`` as the configured user; the raw result."""

    def close(self) -> None:
        """Drop the connection state; the transport may log in again afterwards."""


class TransportFault(Exception):
    """A call that failed in transit.

    ``sent`` is False only when the request certainly never reached Odoo (connection refused,
    DNS failure, connect timeout, TLS handshake failure, a 4xx before the application). Otherwise
    Odoo may have received and even applied it. ``retryable`` is False for faults a retry cannot
    cure (a URL that is not an Odoo RPC endpoint).
    """

    def __init__(self, description: str, *, sent: bool, retryable: bool = True) -> None:
        super().__init__(description)
        self.description = description
        self.sent = sent
        self.retryable = retryable


class ConnectFailed(OSError):
    """The TCP connection or the TLS handshake failed: the request was never sent.

    ``retryable`` is False when trying again cannot help (the server's certificate is refused).
    """

    def __init__(self, description: str, *, retryable: bool = True) -> None:
        super().__init__(description)
        self.retryable = retryable


def _connect_failed(host: str, port: int, exc: OSError) -> ConnectFailed:
    return ConnectFailed(
        f"cannot connect to {host}:{port}: {exc}",
        retryable=not isinstance(exc, ssl.SSLCertVerificationError),
    )


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float
    read: float


class TimeoutHTTPConnection(http.client.HTTPConnection):
    """An ``HTTPConnection`` with a connect timeout and, once connected, a read timeout."""

    def __init__(self, host: str, port: int | None = None, *, timeouts: Timeouts) -> None:
        super().__init__(host, port, timeout=timeouts.connect)
        self._read_timeout = timeouts.read

    def connect(self) -> None:
        try:
            super().connect()
        except OSError as exc:
            raise _connect_failed(self.host, self.port, exc) from exc
        self.sock.settimeout(self._read_timeout)


class TimeoutHTTPSConnection(http.client.HTTPSConnection):
    """The same for HTTPS: the TLS handshake counts as connecting."""

    def __init__(
        self,
        host: str,
        port: int | None = None,
        *,
        timeouts: Timeouts,
        context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(host, port, timeout=timeouts.connect, context=context)
        self._read_timeout = timeouts.read

    def connect(self) -> None:
        try:
            super().connect()
        except OSError as exc:
            raise _connect_failed(self.host, self.port, exc) from exc
        self.sock.settimeout(self._read_timeout)


class _TimeoutHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, timeouts: Timeouts) -> None:
        super().__init__()
        self._timeouts = timeouts

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(self._connection, req)

    def _connection(self, host: str, **_ignored: Any) -> http.client.HTTPConnection:
        # urllib passes the single ``timeout`` of odoorpc here; the split timeouts replace it.
        return TimeoutHTTPConnection(host, timeouts=self._timeouts)


class _TimeoutHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, timeouts: Timeouts, context: ssl.SSLContext) -> None:
        super().__init__(context=context)
        self._timeouts = timeouts
        self._tls = context

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(self._connection, req)

    def _connection(self, host: str, **_ignored: Any) -> http.client.HTTPConnection:
        return TimeoutHTTPSConnection(host, timeouts=self._timeouts, context=self._tls)


def build_url_opener(timeouts: Timeouts) -> urllib.request.OpenerDirector:
    """A urllib opener with split timeouts and no proxy taken from the environment.

    ``xmlrpc.client`` ignores ``HTTP_PROXY``; ignoring it here too keeps both protocols on the
    same path to Odoo.
    """
    return urllib.request.build_opener(
        urllib.request.ProxyHandler({}),
        urllib.request.HTTPCookieProcessor(CookieJar()),
        _TimeoutHTTPHandler(timeouts),
        _TimeoutHTTPSHandler(timeouts, ssl.create_default_context()),
    )


def fault_for_http_status(status: int, reason: str) -> TransportFault:
    """What an HTTP error status (from Odoo or a proxy in front of it) means for the call."""
    description = f"HTTP {status} {reason}".strip()
    if status >= 500:
        # A gateway may answer 502/504 after Odoo received the call: it may have been applied.
        return TransportFault(description, sent=True)
    if status in (408, 429):
        return TransportFault(description, sent=False)
    return TransportFault(description, sent=False, retryable=False)


def fault_error(kind: FaultKind, message: str, remote_name: str) -> OdooError:
    """The adapter error for a fault Odoo answered; ``message`` must already be scrubbed."""
    error_classes: dict[FaultKind, type[OdooError]] = {
        "access_denied": OdooAuthenticationError,
        "access_error": OdooAccessError,
        "user_error": OdooUserError,
        "server_error": OdooServerError,
    }
    error = error_classes[kind](message)
    error.remote_name = remote_name
    return error


def summarize(text: str, limit: int = 300) -> str:
    """The last non-empty line of a fault text (a traceback ends with the exception)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    summary = lines[-1] if lines else ""
    return summary if len(summary) <= limit else summary[: limit - 3] + "..."

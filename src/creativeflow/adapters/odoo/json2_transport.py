"""The JSON-2 transport: Odoo 19's ``POST /json/2/<model>/<method>``, with httpx.

Every request carries the API key (``Authorization: bearer <key>``) and the database
(``X-Odoo-Database``); the body is a JSON object of the method's named arguments, the answer the
method's result as JSON with HTTP 200. There is no session: nothing to log in to, so a call is one
HTTP request (``needs_login`` is False). Errors come as HTTP 4xx/5xx with Odoo's JSON error body
``{"name", "message", "arguments", "context", "debug"}``:

    401  ``werkzeug.exceptions.Unauthorized`` (missing or refused API key)  OdooAuthenticationError
    403  ``odoo.exceptions.AccessError`` (rights, private method)          OdooAccessError
    422  ``UserError``/``ValidationError``, arguments that do not bind      OdooUserError
    other statuses with that body (404 unknown model or method, 500)       OdooServerError

Odoo ran the call in one transaction and rolled it back for every one of them. A status without
that body comes from something in front of Odoo (a proxy's 502/503/504, a 404 for an unknown
database) and is a transport fault, judged as for the other transports. A server that sends the
call to its login page (Odoo 18 and older answer ``/json/2`` with a 303 to ``/web/login``; a proxy
may hand over that HTML page with a 200) has no JSON-2 API: a fault that says so and names the
fix, never retried, nothing applied.

``login`` is optional here: it asks ``res.users/context_get`` (Odoo's documented way to learn the
uid behind an API key) to check the key and learn the uid; calls never need it. ``version`` asks
``GET /web/version``. One ``httpx.Client`` per transport (one per ``OdooClient``, so one per
thread), built on first use: split connect and read timeouts, ``Connection: close`` on every
request (Werkzeug closes each connection anyway, and a lost reply is then never confused with a
stale kept-alive socket), no proxy taken from the environment, and the system's trust store
(``SSL_CERT_FILE`` honoured) as for the other transports.
"""

from __future__ import annotations

import json
import ssl
from typing import Any

import httpx

from creativeflow.adapters.odoo.config import OdooConfig
from creativeflow.adapters.odoo.errors import OdooAuthenticationError, OdooContractError, scrub
from creativeflow.adapters.odoo.signatures import named_arguments
from creativeflow.adapters.odoo.transport import (
    FaultKind,
    TransportFault,
    fault_error,
    fault_for_http_status,
    summarize,
)

JSON2_PREFIX = "/json/2"
VERSION_PATH = "/web/version"
USER_AGENT = "creativeflow-orchestrator (odoo json-2)"
LOGIN_PAGE = "/web/login"
NO_JSON2_API = (
    "this Odoo has no JSON-2 API: it sent the call to its login page, as Odoo 18 and older do "
    "(JSON-2 arrived in Odoo 19); set ODOO_PROTOCOL=xmlrpc or jsonrpc for this server"
)
_USER_ERRORS = frozenset(
    {
        "odoo.exceptions.UserError",
        "odoo.exceptions.ValidationError",
        "odoo.exceptions.MissingError",
        "odoo.exceptions.LockError",
        "odoo.exceptions.RedirectWarning",
    }
)


def json2_fault_kind(status: int, name: str) -> FaultKind:
    """The family of an Odoo JSON-2 error, from its HTTP status and exception name."""
    if status == 401 or name == "odoo.exceptions.AccessDenied":
        return "access_denied"
    if status == 403:
        return "access_error"
    if status == 422 or name in _USER_ERRORS:
        return "user_error"
    return "server_error"


class Json2Transport:
    """Stateless JSON-2 calls as the API key's user. Not thread-safe (one per thread)."""

    needs_login = False

    def __init__(self, config: OdooConfig) -> None:
        self._config = config
        self._client: httpx.Client | None = None

    def version(self) -> Any:
        """``GET /web/version``, shaped like ``common.version`` (``server_version``...)."""
        reply = self._request("GET", VERSION_PATH, None, "web.version")
        if not isinstance(reply, dict):
            return None
        return {
            "server_version": reply.get("version"),
            "server_version_info": reply.get("version_info"),
        }

    def login(self) -> int | None:
        """Check the API key and learn its user's uid; ``None`` when Odoo refuses the key."""
        try:
            context = self.execute_kw("res.users", "context_get", [], {})
        except OdooAuthenticationError:
            return None
        uid = context.get("uid") if isinstance(context, dict) else None
        if not isinstance(uid, int) or isinstance(uid, bool) or uid <= 0:
            raise OdooContractError("res.users.context_get answered no uid")
        return uid

    def execute_kw(self, model: str, method: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        body = named_arguments(model, method, args, kwargs)
        return self._request("POST", f"{JSON2_PREFIX}/{model}/{method}", body, f"{model}.{method}")

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- one request ---------------------------------------------------------------------------

    def _http(self) -> httpx.Client:
        if self._client is None:
            config = self._config
            self._client = httpx.Client(
                base_url=config.root_url,
                timeout=httpx.Timeout(
                    connect=config.connect_timeout,
                    read=config.read_timeout,
                    write=config.read_timeout,
                    pool=config.connect_timeout,
                ),
                limits=httpx.Limits(max_connections=1, max_keepalive_connections=0),
                verify=ssl.create_default_context(),
                trust_env=False,
                follow_redirects=False,
            )
        return self._client

    def _headers(self, with_body: bool) -> dict[str, str]:
        headers = {
            "X-Odoo-Database": self._config.database,
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
            "Connection": "close",
        }
        if with_body:  # a JSON-2 call; /web/version needs no key, so it is not given one
            headers["Authorization"] = f"bearer {self._config.secret}"
            headers["Content-Type"] = "application/json; charset=utf-8"
        return headers

    def _request(self, verb: str, path: str, body: dict[str, Any] | None, what: str) -> Any:
        content = None if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
        try:
            response = self._http().request(
                verb, path, content=content, headers=self._headers(content is not None)
            )
        except httpx.HTTPError as exc:
            raise _transport_fault(what, exc) from exc
        if response.status_code != 200:
            raise self._error(what, response)
        if _is_login_page(response):
            raise TransportFault(f"{what}: {NO_JSON2_API}", sent=False, retryable=False)
        try:
            return response.json()
        except ValueError as exc:
            raise TransportFault(f"{what}: unreadable reply (not JSON)", sent=True) from exc

    def _error(self, what: str, response: httpx.Response) -> Exception:
        status = response.status_code
        error = _odoo_error_body(response)
        if error is None:
            reason = f"{response.reason_phrase} on {what}"
            if _is_login_page(response):
                reason += f" ({NO_JSON2_API})"
            if status == 404:
                # Odoo answers its database-less 404 page when X-Odoo-Database names no database.
                reason += " (no JSON-2 route there: an unknown database, or not an Odoo 19)"
            return fault_for_http_status(status, reason)
        name, message = error
        text = scrub(message, self._config.secret)
        return fault_error(
            json2_fault_kind(status, name),
            f"Odoo {name} (HTTP {status}) on {what}: {summarize(text)}",
            name,
        )


def _is_login_page(response: httpx.Response) -> bool:
    """A redirect to Odoo's login page, or that page itself: no JSON-2 API behind this URL."""
    if 300 <= response.status_code < 400:
        return LOGIN_PAGE in response.headers.get("location", "")
    if "html" not in response.headers.get("content-type", ""):
        return False
    return LOGIN_PAGE in response.text[:65536]


def _odoo_error_body(response: httpx.Response) -> tuple[str, str] | None:
    """(``name``, ``message``) when the body is Odoo's JSON error object, else ``None``."""
    if "json" not in response.headers.get("content-type", ""):
        return None
    try:
        document = response.json()
    except ValueError:
        return None
    if not isinstance(document, dict):
        return None
    name, message = document.get("name"), document.get("message")
    if not isinstance(name, str) or not name or "debug" not in document:
        return None
    return name, message if isinstance(message, str) else str(message)


def _transport_fault(what: str, exc: httpx.HTTPError) -> TransportFault:
    description = f"{what}: {type(exc).__name__}: {exc}"
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        # Connecting (TCP, TLS handshake) failed: the request was never sent.
        return TransportFault(description, sent=False, retryable=not _certificate_refused(exc))
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError):
        return TransportFault(description, sent=False, retryable=False)
    # Read/write timeouts, a connection dropped without a reply: Odoo may have received it.
    return TransportFault(f"{what}: no reply ({type(exc).__name__}: {exc})", sent=True)


def _certificate_refused(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(exc)

"""The JSON-RPC transport: odoorpc's ``ODOO`` on ``/jsonrpc``.

odoorpc contacts the server in its constructor (``/web/webclient/version_info``), so the
``ODOO`` object is built lazily, inside the same fault mapping as every call. It takes a single
timeout; the split connect/read timeouts come from the urllib opener it accepts.
"""

from __future__ import annotations

import copy
import http.client
import logging
import urllib.error
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import odoorpc
import odoorpc.error

from creativeflow.adapters.odoo.config import OdooConfig
from creativeflow.adapters.odoo.errors import OdooContractError, scrub
from creativeflow.adapters.odoo.transport import (
    ConnectFailed,
    FaultKind,
    Timeouts,
    TransportFault,
    build_url_opener,
    fault_error,
    fault_for_http_status,
    summarize,
)

T = TypeVar("T")

_USER_ERRORS = frozenset(
    {
        "odoo.exceptions.UserError",
        "odoo.exceptions.ValidationError",
        "odoo.exceptions.MissingError",
        "odoo.exceptions.RedirectWarning",
    }
)
_ODOORPC_LOGGER = "odoorpc.rpc.jsonrpclib"
_MASK = "********"


def fault_kind(name: str) -> FaultKind:
    """The family of the exception Odoo named in ``error.data.name``."""
    if name == "odoo.exceptions.AccessDenied" or name == "odoo.http.SessionExpiredException":
        return "access_denied"
    if name == "odoo.exceptions.AccessError":
        return "access_error"
    if name in _USER_ERRORS:
        return "user_error"
    return "server_error"


class JsonRpcTransport:
    """One odoorpc session. Not thread-safe (neither is odoorpc)."""

    needs_login = True

    def __init__(
        self, config: OdooConfig, *, odoo_factory: Callable[..., Any] | None = None
    ) -> None:
        self._config = config
        self._odoo_factory = odoo_factory or odoorpc.ODOO
        self._odoo: Any = None
        install_odoorpc_log_redaction()

    def version(self) -> Any:
        odoo = self._connected()
        reply = self._guard(
            "common.version",
            lambda: odoo.json("/jsonrpc", {"service": "common", "method": "version", "args": []}),
        )
        return reply.get("result") if isinstance(reply, dict) else None

    def login(self) -> int | None:
        odoo = self._connected()
        config = self._config

        def log_in() -> bool:
            try:
                odoo.login(config.database, config.login, config.secret)
            except odoorpc.error.RPCError as exc:
                if not exc.info:  # odoorpc's own "Wrong login ID or password": login said false
                    return False
                raise
            return True

        if not self._guard("common.login", log_in):
            return None
        uid = odoo.env.uid
        if not isinstance(uid, int) or isinstance(uid, bool) or uid <= 0:
            raise OdooContractError(f"common.login answered {type(uid).__name__}, not a uid")
        return uid

    def execute_kw(self, model: str, method: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        odoo = self._connected()
        return self._guard(
            f"{model}.{method}", lambda: odoo.execute_kw(model, method, args, kwargs)
        )

    def close(self) -> None:
        # odoorpc holds no socket between calls and its logout is local for Odoo >= 10.
        self._odoo = None

    def _connected(self) -> Any:
        if self._odoo is None:
            config = self._config
            self._odoo = self._guard(
                "web.webclient.version_info",
                lambda: self._odoo_factory(
                    config.host,
                    protocol="jsonrpc+ssl" if config.scheme == "https" else "jsonrpc",
                    port=config.port,
                    timeout=config.read_timeout,
                    opener=build_url_opener(Timeouts(config.connect_timeout, config.read_timeout)),
                ),
            )
        return self._odoo

    def _guard(self, what: str, call: Callable[[], T]) -> T:
        """Run one odoorpc call, turning what it raises into the adapter's terms."""
        try:
            return call()
        except odoorpc.error.RPCError as exc:
            name, message = _fault_of(exc)
            text = scrub(message, self._config.secret)
            raise fault_error(
                fault_kind(name), f"Odoo {name} on {what}: {summarize(text)}", name
            ) from None
        except urllib.error.HTTPError as exc:
            exc.close()
            raise fault_for_http_status(exc.code, f"{exc.reason} on {what}") from None
        except urllib.error.URLError as exc:
            raise _fault_of_url_error(what, exc) from exc
        except ConnectFailed as exc:
            raise TransportFault(f"{what}: {exc}", sent=False, retryable=exc.retryable) from exc
        except (http.client.HTTPException, OSError) as exc:
            raise TransportFault(
                f"{what}: no reply ({type(exc).__name__}: {exc})", sent=True
            ) from exc
        except (ValueError, KeyError, TypeError) as exc:
            # A body that is not a JSON-RPC envelope (a proxy's HTML page, a truncated reply).
            raise TransportFault(
                f"{what}: unreadable reply ({type(exc).__name__})", sent=True
            ) from exc


def _fault_of(exc: Any) -> tuple[str, str]:
    """(``data.name``, ``data.message``) of an odoorpc ``RPCError``."""
    info: Any = exc.info if isinstance(exc.info, dict) else {}
    data: Any = info.get("data") if isinstance(info.get("data"), dict) else {}
    name: Any = data.get("name")
    message: Any = data.get("message")
    return (
        name if isinstance(name, str) else "unknown",
        message if isinstance(message, str) else str(exc),
    )


def _fault_of_url_error(what: str, exc: urllib.error.URLError) -> TransportFault:
    reason = exc.reason
    if isinstance(reason, ConnectFailed):
        return TransportFault(f"{what}: {reason}", sent=False, retryable=reason.retryable)
    if isinstance(reason, OSError):
        # urllib wraps errors raised while sending: part of the request may have left.
        return TransportFault(f"{what}: failed while sending ({reason})", sent=True)
    return TransportFault(f"{what}: {reason}", sent=False, retryable=False)


class _HideRpcSecrets(logging.Filter):
    """Masks the password in odoorpc's DEBUG records of ``/jsonrpc`` calls.

    odoorpc hides a top-level ``password`` parameter only; on ``/jsonrpc`` the password is the
    third positional argument of ``common.login`` and ``object.execute(_kw)``.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        data = args.get("data") if isinstance(args, Mapping) else None
        if isinstance(args, Mapping) and isinstance(data, dict):
            record.args = {**args, "data": _masked(data)}
        return True


def _masked(data: dict[str, Any]) -> dict[str, Any]:
    params = data.get("params")
    if not isinstance(params, dict) or params.get("service") not in ("common", "object"):
        return data
    rpc_args = params.get("args")
    if not isinstance(rpc_args, list) or len(rpc_args) < 3:
        return data
    masked = copy.deepcopy(data)
    masked["params"]["args"][2] = _MASK
    return masked


def install_odoorpc_log_redaction() -> None:
    """Add the masking filter to odoorpc's logger, once per process (idempotent)."""
    logger = logging.getLogger(_ODOORPC_LOGGER)
    if not any(isinstance(existing, _HideRpcSecrets) for existing in logger.filters):
        logger.addFilter(_HideRpcSecrets())

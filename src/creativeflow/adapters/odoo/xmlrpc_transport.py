"""The XML-RPC transport: ``xmlrpc.client.ServerProxy`` on ``/xmlrpc/2/common`` and ``/object``."""

from __future__ import annotations

import http.client
import xmlrpc.client
from collections.abc import Callable
from typing import Any, TypeVar
from xml.parsers.expat import ExpatError

from creativeflow.adapters.odoo.config import OdooConfig
from creativeflow.adapters.odoo.errors import OdooContractError, scrub
from creativeflow.adapters.odoo.transport import (
    ConnectFailed,
    FaultKind,
    TimeoutHTTPConnection,
    TimeoutHTTPSConnection,
    Timeouts,
    TransportFault,
    fault_error,
    fault_for_http_status,
    summarize,
)

T = TypeVar("T")

# Odoo's xmlrpc_handle_exception_int: 1 application error, 2 warning, 3 AccessDenied, 4 AccessError.
_FAULT_KINDS: dict[int, FaultKind] = {2: "user_error", 3: "access_denied", 4: "access_error"}


class _OneShotTransport(xmlrpc.client.Transport):
    """An ``xmlrpc.client.Transport`` with split timeouts, a new connection per request, one try.

    The stock ``Transport.request`` silently sends the request a second time when the connection
    drops; the client owns retries (and must know a debit may have been applied), so this one
    tries once.
    """

    def __init__(self, *, https: bool, timeouts: Timeouts) -> None:
        super().__init__()
        self._https = https
        self._timeouts = timeouts

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        self.close()
        chost, self._extra_headers, _x509 = self.get_host_info(host)
        connection: http.client.HTTPConnection
        if self._https:
            connection = TimeoutHTTPSConnection(chost, timeouts=self._timeouts)
        else:
            connection = TimeoutHTTPConnection(chost, timeouts=self._timeouts)
        self._connection = host, connection
        return connection

    def request(
        self, host: Any, handler: str, request_body: Any, verbose: bool = False
    ) -> tuple[Any, ...]:
        return self.single_request(host, handler, request_body, verbose)


class XmlRpcTransport:
    """One XML-RPC session: keeps the uid after ``login``. Not thread-safe."""

    needs_login = True

    def __init__(self, config: OdooConfig) -> None:
        self._config = config
        self._http = _OneShotTransport(
            https=config.scheme == "https",
            timeouts=Timeouts(config.connect_timeout, config.read_timeout),
        )
        self._common = xmlrpc.client.ServerProxy(
            f"{config.root_url}/xmlrpc/2/common", transport=self._http, allow_none=False
        )
        self._object = xmlrpc.client.ServerProxy(
            f"{config.root_url}/xmlrpc/2/object", transport=self._http, allow_none=False
        )
        self._uid: int | None = None

    def version(self) -> Any:
        return self._guard("common.version", lambda: self._common.version())

    def login(self) -> int | None:
        config = self._config
        uid = self._guard(
            "common.login",
            lambda: self._common.login(config.database, config.login, config.secret),
        )
        if uid is False:
            self._uid = None
            return None
        if not isinstance(uid, int) or isinstance(uid, bool) or uid <= 0:
            raise OdooContractError(f"common.login answered {type(uid).__name__}, not a uid")
        self._uid = uid
        return uid

    def execute_kw(self, model: str, method: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        if self._uid is None:
            raise RuntimeError("XmlRpcTransport.execute_kw called before login")
        config, uid = self._config, self._uid
        return self._guard(
            f"{model}.{method}",
            lambda: self._object.execute_kw(
                config.database, uid, config.secret, model, method, args, kwargs
            ),
        )

    def close(self) -> None:
        self._http.close()
        self._uid = None

    def _guard(self, what: str, call: Callable[[], T]) -> T:
        """Run one RPC, turning whatever ``xmlrpc.client`` raises into the adapter's terms."""
        try:
            return call()
        except xmlrpc.client.Fault as fault:
            code = fault.faultCode if isinstance(fault.faultCode, int) else 1
            text = scrub(str(fault.faultString), self._config.secret)
            raise fault_error(
                _FAULT_KINDS.get(code, "server_error"),
                f"Odoo fault {code} on {what}: {summarize(text)}",
                f"xmlrpc.fault.{code}",
            ) from None
        except xmlrpc.client.ProtocolError as exc:
            raise fault_for_http_status(exc.errcode, f"{exc.errmsg} on {what}") from None
        except ConnectFailed as exc:
            raise TransportFault(f"{what}: {exc}", sent=False, retryable=exc.retryable) from exc
        except (http.client.HTTPException, OSError) as exc:
            raise TransportFault(
                f"{what}: no reply ({type(exc).__name__}: {exc})", sent=True
            ) from exc
        except (ExpatError, xmlrpc.client.ResponseError) as exc:
            raise TransportFault(f"{what}: unreadable reply ({exc})", sent=True) from exc

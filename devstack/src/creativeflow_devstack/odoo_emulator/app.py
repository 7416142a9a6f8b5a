"""Routing: which path speaks which protocol, and the life of one RPC request.

Every RPC request (XML-RPC, JSON-RPC, and Odoo 19's JSON-2 under ``/json/2`` when the claimed
version has it, see ``versions``) is counted, delayed
by the configured latency, dispatched, encoded, and, when a fault knob says so, failed before it
is applied or answered with a dropped connection after it was applied. Control requests
(``/__emulator__/...``) go to the control face and are neither counted nor delayed. One log line
per request says what was called and how it ended; it never contains arguments or headers, so
passwords and API keys never reach a log.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import errors, wire
from .control import CONTROL_PREFIX, ControlFace
from .counters import RequestCounter
from .faults import FaultKnobs
from .http_types import (
    DROP_CONNECTION,
    HttpOutcome,
    HttpRequest,
    HttpResponse,
    json_response,
    method_not_allowed,
    not_found,
    text_response,
)
from .json2 import Json2Endpoint, is_json2_path, target_of
from .services import RpcServices, describe_call
from .versions import ServerVersion, is_json_route, login_redirect

logger = logging.getLogger("creativeflow_devstack.odoo_emulator")

_XMLRPC_PATH = re.compile(r"/xmlrpc/2/(?P<service>[^/]+)")
JSONRPC_PATH = "/jsonrpc"
VERSION_INFO_PATH = "/web/webclient/version_info"
WEB_VERSION_PATH = "/web/version"  # Odoo 19's replacement for common.version (GET, no auth)


@dataclass(slots=True)
class _Exchange:
    """What one request turned out to be, for the counters and the log line."""

    path: str
    service_method: str | None = None
    model_method: str | None = None
    error: str | None = None
    status: int = 200
    dropped: bool = False


class _FaultGate:
    """Applies the injected faults to one call at the moment it would be applied."""

    def __init__(self, faults: FaultKnobs) -> None:
        self._faults = faults
        self.reply_lost = False

    def before_apply(self, model_method: str | None) -> None:
        if self._faults.take_failure(model_method):
            raise errors.ApplicationError(
                f"injected application error for {model_method or 'this call'} "
                "(odoo emulator fail_next): nothing was applied",
                python_class="RuntimeError",
            )
        self.reply_lost = self._faults.take_lost_reply(model_method)


class EmulatorApp:
    """Turns an ``HttpRequest`` into an ``HttpResponse`` or a dropped connection."""

    def __init__(
        self,
        services: RpcServices,
        faults: FaultKnobs,
        counter: RequestCounter,
        control: ControlFace,
        json2: Json2Endpoint,
        version: ServerVersion,
    ) -> None:
        self._version = version
        self._services = services
        self._faults = faults
        self._counter = counter
        self._control = control
        self._json2_endpoint = json2

    def handle(self, request: HttpRequest) -> HttpOutcome:
        if request.path == CONTROL_PREFIX or request.path.startswith(CONTROL_PREFIX + "/"):
            return self._control.handle(request)
        started = time.monotonic()
        exchange = _Exchange(path=request.path)
        try:
            outcome = self._route(request, exchange)
        finally:
            self._counter.record(exchange.path, exchange.service_method, exchange.model_method)
        if isinstance(outcome, HttpResponse):
            exchange.status = outcome.status
        else:
            exchange.dropped = True
        _log_exchange(request.method, exchange, time.monotonic() - started)
        return outcome

    def _route(self, request: HttpRequest, exchange: _Exchange) -> HttpOutcome:
        if not self._version.serves_json2:
            if is_json_route(request.path):
                return login_redirect(request.path, request.query)
            if request.path == WEB_VERSION_PATH:
                return not_found()
        if is_json2_path(request.path):
            return self._json2(request, exchange)
        if request.path == WEB_VERSION_PATH:
            return self._web_version(request)
        xmlrpc = _XMLRPC_PATH.fullmatch(request.path)
        if xmlrpc is None and request.path not in (JSONRPC_PATH, VERSION_INFO_PATH):
            return not_found()
        if request.method != "POST":
            return method_not_allowed("POST")
        if xmlrpc is not None:
            return self._xmlrpc(xmlrpc.group("service"), request, exchange)
        if request.path == JSONRPC_PATH:
            return self._jsonrpc(request, exchange)
        return self._version_info(request)

    # -- XML-RPC -------------------------------------------------------------------------------

    def _xmlrpc(self, service: str, request: HttpRequest, exchange: _Exchange) -> HttpOutcome:
        try:
            method, params = wire.decode_xmlrpc_call(request.body)
        except errors.OdooError as exc:
            exchange.error = exc.qualified_name
            return _xml(wire.encode_xmlrpc_fault(exc))
        gate = _FaultGate(self._faults)
        try:
            result = self._call(service, method, params, gate, exchange)
            body = _encode_xmlrpc_result(result)
        except errors.OdooError as exc:
            exchange.error = exc.qualified_name
            body = wire.encode_xmlrpc_fault(exc)
        return DROP_CONNECTION if gate.reply_lost else _xml(body)

    # -- JSON-RPC ------------------------------------------------------------------------------

    def _jsonrpc(self, request: HttpRequest, exchange: _Exchange) -> HttpOutcome:
        try:
            call = wire.decode_jsonrpc(request.body, request.header("content-type"))
        except wire.BadHttpRequest as exc:
            return text_response(exc.status, exc.text)
        gate = _FaultGate(self._faults)
        try:
            service, method, args = _jsonrpc_target(call.params)
            result = self._call(service, method, args, gate, exchange)
            body = wire.encode_jsonrpc_result(call.request_id, result)
        except errors.OdooError as exc:
            exchange.error = exc.qualified_name
            body = wire.encode_jsonrpc_error(call.request_id, exc)
        return DROP_CONNECTION if gate.reply_lost else _json(body)

    def _version_info(self, request: HttpRequest) -> HttpOutcome:
        try:
            call = wire.decode_jsonrpc(request.body, request.header("content-type"))
        except wire.BadHttpRequest as exc:
            return text_response(exc.status, exc.text)
        self._delay()
        return _json(wire.encode_jsonrpc_result(call.request_id, self._version.common_version()))

    # -- JSON-2 (Odoo 19) ----------------------------------------------------------------------

    def _json2(self, request: HttpRequest, exchange: _Exchange) -> HttpOutcome:
        target = target_of(request.path)
        if target is not None:
            exchange.model_method = f"{target[0]}.{target[1]}"
        gate = _FaultGate(self._faults)
        outcome = self._json2_endpoint.serve(request, gate.before_apply, self._delay)
        return DROP_CONNECTION if gate.reply_lost else outcome

    def _web_version(self, request: HttpRequest) -> HttpOutcome:
        if request.method not in ("GET", "HEAD"):
            return method_not_allowed("GET, HEAD")
        self._delay()
        return json_response(200, self._version.web_version())

    # -- shared --------------------------------------------------------------------------------

    def _call(
        self,
        service: str,
        method: Any,
        params: Sequence[Any],
        gate: _FaultGate,
        exchange: _Exchange,
    ) -> Any:
        exchange.service_method, exchange.model_method = describe_call(service, str(method), params)
        self._delay()
        return self._services.dispatch(service, method, params, gate)

    def _delay(self) -> None:
        latency = self._faults.latency
        if latency > 0:
            time.sleep(latency)


def _jsonrpc_target(params: Any) -> tuple[str, Any, list[Any]]:
    """``service``, ``method`` and ``args`` of ``/jsonrpc``, refused as Odoo's route would."""
    if not isinstance(params, dict):
        raise errors.ApplicationError("params must be a JSON object", python_class="TypeError")
    missing = [name for name in ("service", "method", "args") if name not in params]
    if missing:
        names = " and ".join(repr(name) for name in missing)
        raise errors.ApplicationError(
            f"RPC.jsonrpc() missing {len(missing)} required positional argument(s): {names}",
            python_class="TypeError",
        )
    service, args = params["service"], params["args"]
    if not isinstance(service, str):
        raise errors.ApplicationError("service must be a string", python_class="TypeError")
    if not isinstance(args, list):
        raise errors.ApplicationError("args must be a JSON array", python_class="TypeError")
    return service, params["method"], args


def _encode_xmlrpc_result(result: Any) -> bytes:
    """Odoo marshals without ``allow_none``: what XML-RPC cannot carry becomes a fault 1."""
    try:
        return wire.encode_xmlrpc_result(result)
    except (TypeError, OverflowError) as exc:
        raise errors.from_python_exception(exc) from exc


def _xml(body: bytes) -> HttpResponse:
    return HttpResponse(200, body, wire.XML_CONTENT_TYPE)


def _json(body: bytes) -> HttpResponse:
    return HttpResponse(200, body, wire.JSON_CONTENT_TYPE)


def _log_exchange(method: str, exchange: _Exchange, elapsed: float) -> None:
    outcome = "reply dropped" if exchange.dropped else str(exchange.status)
    if exchange.error:
        outcome += f" {exchange.error}"
    logger.info(
        "%s %s %s %s -> %s %.1fms",
        method,
        exchange.path,
        exchange.service_method or "-",
        exchange.model_method or "-",
        outcome,
        elapsed * 1000,
    )

"""Odoo's RPC encodings: XML-RPC (``/xmlrpc/2/*``), JSON-RPC 2.0 (``/jsonrpc``) and JSON-2.

What a client sees is matched to Odoo, not to the specifications:

- XML-RPC answers are marshalled with ``allow_none=False`` as Odoo does, so a ``None`` result is a
  server error rather than a ``<nil/>``; control characters are dropped from strings because
  XML 1.0 forbids them; errors are ``<fault>`` responses with an integer code, HTTP 200.
- JSON-RPC errors also come with HTTP 200, as ``{"code": 200, "message": "Odoo Server Error",
  "data": {"name", "message", "arguments", "context", "debug"}}``. A body that is not JSON, or not
  a JSON object, is answered with a bare HTTP 400, as Werkzeug does before Odoo sees it.
- JSON-2 (Odoo 19, ``/json/2/<model>/<method>``) answers the bare result as JSON with HTTP 200,
  and an error as ``{"name", "message", "arguments", "context", "debug"}`` (Odoo's
  ``serialize_exception``) with the error's HTTP status.
"""

from __future__ import annotations

import json
import xmlrpc.client
from dataclasses import dataclass
from typing import Any

from . import errors

XML_CONTENT_TYPE = "text/xml; charset=utf-8"
JSON_CONTENT_TYPE = "application/json"
JSON2_CONTENT_TYPE = "application/json; charset=utf-8"  # Odoo's make_json_response
_JSON_MIMETYPES = frozenset({"application/json", "application/json-rpc"})

# 0 to 31 except tab, newline and carriage return: XML 1.0 cannot carry them.
_CONTROL_CHARACTERS = dict.fromkeys(set(range(32)) - {9, 10, 13})


class BadHttpRequest(Exception):
    """A request refused at the HTTP level, before any RPC dispatch."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


# -- XML-RPC -------------------------------------------------------------------------------------


def decode_xmlrpc_call(body: bytes) -> tuple[str, tuple[Any, ...]]:
    """``(method, params)`` of a ``<methodCall>``; a body Odoo cannot parse is a fault 1."""
    try:
        params, method = xmlrpc.client.loads(body, use_datetime=True)
    except Exception as exc:  # expat and marshalling errors alike become a traceback fault
        raise errors.from_python_exception(exc) from exc
    if method is None:
        raise errors.ApplicationError("not a methodCall", python_class="ValueError")
    return method, params


def encode_xmlrpc_result(value: Any) -> bytes:
    """A ``<methodResponse>``; ``TypeError``/``OverflowError`` for what XML-RPC cannot carry."""
    text = xmlrpc.client.dumps(
        (_strip_control_characters(value),), methodresponse=True, allow_none=False
    )
    return text.encode("utf-8")


def encode_xmlrpc_fault(error: errors.OdooError) -> bytes:
    fault = xmlrpc.client.Fault(error.fault_code, _strip_control_characters(error.fault_string()))
    return xmlrpc.client.dumps(fault, methodresponse=True, allow_none=False).encode("utf-8")


def _strip_control_characters(value: Any) -> Any:
    if isinstance(value, str):
        return value.translate(_CONTROL_CHARACTERS)
    if isinstance(value, dict):
        return {key: _strip_control_characters(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_strip_control_characters(item) for item in value]
    return value


# -- JSON-RPC ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JsonRpcCall:
    """A decoded JSON-RPC request: its ``id`` (echoed back) and its ``params``."""

    request_id: Any
    params: Any  # a JSON object when well formed; checked by whoever reads it


def decode_jsonrpc(body: bytes, content_type: str) -> JsonRpcCall:
    """Parse a JSON-RPC envelope, refusing what Odoo refuses with HTTP 400."""
    mimetype = content_type.split(";", 1)[0].strip().lower()
    if mimetype not in _JSON_MIMETYPES:
        raise BadHttpRequest(
            400,
            f"Request inferred type is compatible with ['http'] but 'json' was forced by the "
            f"route (got content type {mimetype or 'none'!r}).",
        )
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BadHttpRequest(400, "Invalid JSON data") from None
    if not isinstance(document, dict):
        raise BadHttpRequest(400, "Invalid JSON-RPC data")
    return JsonRpcCall(request_id=document.get("id"), params=document.get("params", {}))


def encode_jsonrpc_result(request_id: Any, result: Any) -> bytes:
    """A success envelope; like Odoo, a ``None`` result leaves ``result`` out."""
    response: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id}
    if result is not None:
        response["result"] = result
    return _json_bytes(response)


def encode_jsonrpc_error(request_id: Any, error: errors.OdooError) -> bytes:
    data = {
        "name": error.qualified_name,
        "message": error.message,
        "arguments": [error.message],
        "context": {},
        "debug": error.traceback_text(),
    }
    envelope = {
        "jsonrpc": "2.0",
        "id": request_id,
        "error": {"code": 200, "message": "Odoo Server Error", "data": data},
    }
    return _json_bytes(envelope)


def _json_bytes(document: dict[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False).encode("utf-8")


# -- JSON-2 --------------------------------------------------------------------------------------


def encode_json2_result(result: Any) -> bytes:
    """The method's result itself, as JSON (``None`` is ``null``: JSON-2 can carry it)."""
    return json.dumps(result, ensure_ascii=False).encode("utf-8")


def encode_json2_error(error: errors.OdooError) -> bytes:
    document = {
        "name": error.qualified_name,
        "message": error.message,
        "arguments": error.arguments,
        "context": {},
        "debug": error.traceback_text(),
    }
    return json.dumps(document, ensure_ascii=False).encode("utf-8")

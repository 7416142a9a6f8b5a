"""Odoo 19's External JSON-2 API: ``POST /json/2/<model>/<method>`` with a bearer API key.

What a request goes through, in the order Odoo 19 does it (``odoo/http.py`` ``_serve_db``, then
``ir.http._authenticate``, then the ``/json/2/rpc`` dispatcher and ``web_json_2_rpc``):

1. the database: ``X-Odoo-Database`` naming another database than the emulator's makes Odoo fall
   back to its database-less routes, where ``/json/2`` does not exist: a bare 404 page. Without
   the header the single database is used (Odoo's "monodb");
2. the content type: anything but ``application/json`` is a 415, before authentication;
3. the route: another path under ``/json/2``, or a method other than POST, is a 404 ("Did you
   mean POST /json/2/<model>/<method>?");
4. the API key (``Authorization: bearer <key>``, scheme in any case): missing or unknown is a 401
   with ``WWW-Authenticate``; a password is an unknown key;
5. the body: not JSON, or not a JSON object, is a 400; ``ids`` and ``context`` are taken out, the
   other keys are the method's named arguments;
6. the model and method (``ModelRegistry.call_named``), then the method itself.

Every error is answered with its HTTP status and Odoo's JSON error body (see ``wire``), except
the database-less 404 and the 415, which Odoo answers with Werkzeug's plain pages.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from . import errors, wire
from .auth import UserDirectory
from .http_types import HttpOutcome, HttpRequest, HttpResponse, not_found
from .models import ModelRegistry
from .seed import UserSeed

JSON2_PREFIX = "/json/2"
_TARGET = re.compile(r"/json/2/(?P<model>[^/]+)/(?P<method>[^/]+)")
_BEARER = re.compile(r"^bearer\s+(.+)$", re.IGNORECASE)  # Odoo's _auth_method_bearer
_ROUTE_TYPE = "/json/2/rpc"
_NO_KEY = "User not authenticated, use an API Key with a Bearer Authorization header."
_BAD_KEY = "Invalid apikey"


def is_json2_path(path: str) -> bool:
    return path == JSON2_PREFIX or path.startswith(JSON2_PREFIX + "/")


def target_of(path: str) -> tuple[str, str] | None:
    """(model, method) of ``/json/2/<model>/<method>``, or ``None`` for any other path."""
    match = _TARGET.fullmatch(path)
    if match is None:
        return None
    return unquote(match.group("model")), unquote(match.group("method"))


class Json2Endpoint:
    """Serves the ``/json/2`` routes over the emulator's users and models."""

    def __init__(self, directory: UserDirectory, registry: ModelRegistry) -> None:
        self._directory = directory
        self._registry = registry

    def serve(
        self,
        request: HttpRequest,
        before_apply: Callable[[str | None], None],
        delay: Callable[[], None],
    ) -> HttpOutcome:
        """One request; ``before_apply`` is told the model method just before it could apply."""
        database = request.header("x-odoo-database")
        if database and database != self._directory.database:
            return not_found()
        mimetype = request.header("content-type").split(";", 1)[0].strip().lower()
        if mimetype != "application/json":
            return _unsupported_media_type(mimetype)
        target = target_of(request.path)
        try:
            if target is None or request.method != "POST":
                raise errors.HttpError(404, "Did you mean POST /json/2/<model>/<method>?")
            delay()
            caller = self._caller(request)
            params = _body_params(request.body)
            model, method = target
            ids = params.pop("ids", ())
            context = params.pop("context", {})
            if not isinstance(context, dict):
                raise errors.ApplicationError(
                    "context must be a JSON object", python_class="TypeError"
                )
            result = self._registry.call_named(
                caller,
                model,
                method,
                ids,
                params,
                lambda: before_apply(f"{model}.{method}"),
            )
        except errors.OdooError as error:
            return error_response(error)
        return HttpResponse(200, wire.encode_json2_result(result), wire.JSON2_CONTENT_TYPE)

    def _caller(self, request: HttpRequest) -> UserSeed:
        header = request.header("authorization")
        match = _BEARER.match(header) if header else None
        if match is None:
            raise _unauthorized(_NO_KEY)
        user = self._directory.bearer_user(match.group(1))
        if user is None:
            raise _unauthorized(_BAD_KEY)
        return user


def error_response(error: errors.OdooError) -> HttpResponse:
    headers = error.headers if isinstance(error, errors.HttpError) else ()
    return HttpResponse(
        errors.json2_status(error),
        wire.encode_json2_error(error),
        wire.JSON2_CONTENT_TYPE,
        headers,
    )


def _unauthorized(message: str) -> errors.HttpError:
    return errors.HttpError(401, message, (("WWW-Authenticate", "Bearer"),))


def _body_params(body: bytes) -> dict[str, Any]:
    if not body:
        return {}
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise errors.HttpError(400, f"could not parse the body as json: {exc}") from None
    if not isinstance(document, dict):
        raise errors.HttpError(400, "could not parse the body, expecting a json object")
    return document


def _unsupported_media_type(mimetype: str) -> HttpResponse:
    compatible = ["http"]
    if mimetype in ("application/json", "application/json-rpc"):
        compatible.append("jsonrpc")
    text = (
        "415 Unsupported Media Type: Request inferred type is compatible with "
        f"{compatible} but '/json/2/<model>/<method>' is type={_ROUTE_TYPE!r}."
    )
    return HttpResponse(415, text.encode("utf-8"), headers=(("Accept", "application/json"),))

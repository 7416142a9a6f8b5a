"""Every error as RFC 9457 problem+json; nothing internal (or secret) leaks into a body."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from creativeflow import correlation
from creativeflow.domain.errors import DomainError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    type_: str = "about:blank",
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    body = {"type": type_, "title": title, "status": status, "detail": detail, **extensions}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _validation_errors(error: RequestValidationError) -> list[dict[str, Any]]:
    # the offending input is left out: it may be large, or carry what the client should not echo
    return [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in error.errors()
    ]


def problem_body(error: DomainError) -> dict[str, Any]:
    """What the user reads: the error's public sentence and stable fields, never the text an
    adapter got from a remote host."""
    return {
        "type": error.problem_type,
        "title": error.title,
        "status": error.status_code,
        "detail": error.public_detail,
        **error.public_extensions,
    }


def stored_answer(status: int, body: dict[str, Any]) -> JSONResponse:
    """An answer kept for an idempotency key, returned as it was first given."""
    media_type = PROBLEM_JSON if status >= 400 else "application/json"
    return JSONResponse(
        body, status_code=status, media_type=media_type, headers={"Idempotent-Replayed": "true"}
    )


async def _on_domain_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, DomainError)
    headers = None
    if error.retry_after is not None:
        headers = {"Retry-After": str(error.retry_after)}
    elif error.status_code == 503:
        headers = {"Retry-After": "5"}
    if error.status_code >= 500:
        log.warning("%s: %s", type(error).__name__, error.detail)
    elif error.public_detail != error.detail:
        log.info("%s: %s", type(error).__name__, error.detail)
    return JSONResponse(
        problem_body(error),
        status_code=error.status_code,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


async def _on_validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    return problem(
        422,
        "Invalid request",
        "the request does not match the documented schema",
        type_="/problems/validation",
        errors=_validation_errors(error),
    )


async def _on_http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    if error.status_code == 400:
        # a body FastAPI could not even decode: bad input, like any other
        cause = error.__cause__
        if isinstance(cause, RecursionError):
            why = "the JSON document is nested too deeply"
        elif isinstance(cause, UnicodeDecodeError):
            why = "the body is not UTF-8 text"
        else:
            why = "the body is not a JSON document"
        return problem(
            422,
            "Invalid request",
            f"the request body could not be read: {why}",
            type_="/problems/validation",
            errors=[{"loc": ["body"], "msg": why, "type": "json_invalid"}],
        )
    return problem(
        error.status_code,
        _TITLES.get(error.status_code, "Error"),
        str(error.detail),
        headers=dict(error.headers or {}),
    )


async def _on_unstorable_input(request: Request, error: Exception) -> JSONResponse:
    """A value the database cannot take (out of range, a character it cannot store) that the
    schemas let through: the client's input is refused as any other bad input is (a paid step
    writes its first transaction before any charge, so that is where input fails). The
    database's message stays out of the log and the answer: it quotes the SQL and the value."""
    log.warning(
        "database refused input on %s %s: %s",
        request.method,
        request.url.path,
        type(getattr(error, "orig", error)).__name__,
    )
    return problem(
        422,
        "Invalid request",
        "the request holds a value that cannot be stored; check the text fields",
        type_="/problems/validation",
        errors=[{"loc": [], "msg": "a value cannot be stored", "type": "value_error"}],
    )


async def _on_unexpected(request: Request, error: Exception) -> JSONResponse:
    # Starlette answers this one outside every middleware, after the correlation id's context
    # has ended: take the id from the request, for the log line and for the answer
    correlation_id = str(request.scope.get("state", {}).get("correlation_id") or "")
    token = correlation.set_current(correlation_id or None)
    try:
        log.exception("unexpected error while serving %s %s", request.method, request.url.path)
    finally:
        correlation.reset(token)
    return problem(
        500,
        "Internal error",
        "Something went wrong on our side and nothing was changed. Try again; if it keeps "
        "happening, contact support with the request id.",
        headers={"X-Request-ID": correlation_id} if correlation_id else None,
        request_id=correlation_id or None,
    )


_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    404: "Not found",
    405: "Method not allowed",
    413: "Payload too large",
    415: "Unsupported media type",
    429: "Too many requests",
}


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _on_domain_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(DataError, _on_unstorable_input)
    app.add_exception_handler(Exception, _on_unexpected)

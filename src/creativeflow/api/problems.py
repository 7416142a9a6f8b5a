"""Every error as RFC 9457 problem+json; nothing internal (or secret) leaks into a body."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

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
    return {
        "type": error.problem_type,
        "title": error.title,
        "status": error.status_code,
        "detail": error.detail,
        **error.extensions,
    }


def stored_answer(status: int, body: dict[str, Any]) -> JSONResponse:
    """An answer kept for an idempotency key, returned as it was first given."""
    media_type = PROBLEM_JSON if status >= 400 else "application/json"
    return JSONResponse(
        body, status_code=status, media_type=media_type, headers={"Idempotent-Replayed": "true"}
    )


async def _on_domain_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, DomainError)
    headers = {"Retry-After": "5"} if error.status_code == 503 else None
    if error.status_code >= 500:
        log.warning("%s: %s", type(error).__name__, error.detail)
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
        # a body FastAPI could not even decode (not UTF-8, not JSON): bad input, like any other
        return problem(
            422,
            "Invalid request",
            "the request body could not be decoded as JSON",
            type_="/problems/validation",
            errors=[{"loc": ["body"], "msg": "not a UTF-8 JSON document", "type": "json_invalid"}],
        )
    return problem(
        error.status_code,
        _TITLES.get(error.status_code, "Error"),
        str(error.detail),
        headers=dict(error.headers or {}),
    )


async def _on_unexpected(request: Request, error: Exception) -> JSONResponse:
    log.exception("unexpected error while serving %s %s", request.method, request.url.path)
    return problem(500, "Internal error", "an unexpected error occurred; it has been logged")


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
    app.add_exception_handler(Exception, _on_unexpected)

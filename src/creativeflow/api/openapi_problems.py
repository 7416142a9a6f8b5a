"""The error answers as OpenAPI documents them: one problem+json schema (RFC 9457) and, for each
status a route can give, what it means and an example a client developer can code against."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from creativeflow.api.problems import PROBLEM_JSON


class Problem(BaseModel):
    """An error answer. ``type`` is stable and names the problem; ``detail`` is a sentence for
    the user; the other members are the figures that explain it."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="a stable URI reference naming the problem")
    title: str
    status: int
    detail: str = Field(description="what happened and what to do, for the user")
    code: str | None = Field(None, description="Odoo's stable refusal code, on credit refusals")
    errors: list[dict[str, Any]] | None = Field(
        None, description="on 422: each field refused (loc, msg, type)"
    )


_EXAMPLES: dict[int, tuple[str, dict[str, Any]]] = {
    401: (
        "missing or invalid gateway credential, or an identity header that is not canonical "
        "or given twice",
        {
            "type": "about:blank",
            "title": "Unauthorized",
            "status": 401,
            "detail": "missing or invalid gateway credential",
        },
    ),
    402: (
        "not enough credits; nothing was charged",
        {
            "type": "/problems/insufficient-credits",
            "title": "Not enough credits",
            "status": 402,
            "detail": "This needs 24 credits and your balance is 10. Add credits or ask for "
            "fewer samples, then try again.",
            "code": "insufficient_credits",
            "required": 24,
            "balance": 10,
        },
    ),
    403: (
        "the subscription tier does not allow this request (`reason` says which rule), or the "
        "user has no credit account; nothing was charged",
        {
            "type": "/problems/tier-forbids",
            "title": "Not included in your plan",
            "status": 403,
            "detail": "Your plan does not include this output format. Choose another format "
            "or upgrade your plan.",
            "code": "tier_forbids",
            "reason": "format_not_allowed",
            "tier": "free",
        },
    ),
    404: (
        "no such request for this user",
        {
            "type": "/problems/not-found",
            "title": "Not found",
            "status": 404,
            "detail": "generation request not found",
            "request_id": "3f1c5a7e-2b0d-4c1e-9a8f-6d5e4c3b2a10",
        },
    ),
    409: (
        "the request is not in a state for this action, another step of it is being paid "
        "for, or an Idempotency-Key whose first call is still running",
        {
            "type": "/problems/conflict",
            "title": "Conflict",
            "status": 409,
            "detail": "cannot select a sample of a request in PROCESSING_SAMPLES",
            "current_status": "PROCESSING_SAMPLES",
        },
    ),
    413: (
        "the body is larger than the service takes",
        {
            "type": "/problems/payload-too-large",
            "title": "Payload too large",
            "status": 413,
            "detail": "the request body is larger than 65536 bytes",
        },
    ),
    422: (
        "the body, a parameter or a query does not match the documented schema, or an "
        "Idempotency-Key reused with another body; nothing was stored or charged",
        {
            "type": "/problems/validation",
            "title": "Invalid request",
            "status": 422,
            "detail": "the request does not match the documented schema",
            "errors": [
                {
                    "loc": ["body", "samples"],
                    "msg": "Input should be less than or equal to 16",
                    "type": "less_than_equal",
                }
            ],
        },
    ),
    429: (
        "as many requests in progress as the tier allows; retry once one finishes",
        {
            "type": "/problems/too-many-requests-in-flight",
            "title": "Too many requests in progress",
            "status": 429,
            "detail": "You already have as many requests in progress as your plan allows. "
            "Wait for one to finish, then try again.",
            "code": "tier_forbids",
            "reason": "too_many_requests_in_flight",
            "requests_in_flight": 3,
            "max_requests_in_flight": 3,
        },
    ),
    500: (
        "an unexpected error; nothing was changed. `X-Request-ID` (also `request_id`) finds "
        "the log line",
        {
            "type": "about:blank",
            "title": "Internal error",
            "status": 500,
            "detail": "Something went wrong on our side and nothing was changed. Try again; if "
            "it keeps happening, contact support with the request id.",
            "request_id": "5b2f0c9e7d1a4e3b8c6f2a1d0e9b8c7a",
        },
    ),
    503: (
        "Odoo or the job queue is unavailable; nothing is owed (a debit already made is "
        "refunded). Retry after `Retry-After` seconds",
        {
            "type": "/problems/credit-service-unavailable",
            "title": "Credit service unavailable",
            "status": 503,
            "detail": "The credit service is unavailable right now and nothing was charged. "
            "Try again in a few seconds.",
        },
    ),
}


def problem_responses(*statuses: int, **overrides: str) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of a route: each status with its problem+json schema and example;
    ``overrides`` (``s409="..."``) word a status for this route."""
    schema = Problem.model_json_schema()
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        description, example = _EXAMPLES[status]
        responses[status] = {
            "description": overrides.get(f"s{status}", description),
            "content": {PROBLEM_JSON: {"schema": schema, "example": example}},
        }
    return responses

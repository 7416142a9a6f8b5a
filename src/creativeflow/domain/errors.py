"""Errors of the product, each carrying the HTTP status and problem type the API gives it.

DomainError
├── InvalidTransition           409  a state change the state machine refuses
├── NotFound                    404  unknown id, or somebody else's
├── Conflict                    409  the request is not in a state for this action
├── CreditsRefused              402/403/409/422/429  Odoo refused the debit (a stable code;
│                               429 when the tier's cap on unfinished requests is reached)
├── CreditServiceUnavailable    503  Odoo could not be reached; nothing was charged
│   └── CreditOutcomeUnknown    503  Odoo may have applied the call; recovery settles it
└── DispatchUnavailable         503  the job could not be published
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    status_code = 500
    problem_type = "about:blank"
    title = "Internal error"

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions


class InvalidTransition(DomainError):
    status_code = 409
    problem_type = "/problems/invalid-transition"
    title = "Invalid state transition"


class NotFound(DomainError):
    status_code = 404
    problem_type = "/problems/not-found"
    title = "Not found"


class Conflict(DomainError):
    status_code = 409
    problem_type = "/problems/conflict"
    title = "Conflict"


_REFUSAL_STATUS = {
    "insufficient_credits": 402,
    "tier_forbids": 403,
    "unknown_account": 403,
    "invalid_request": 422,
    "request_conflict": 409,
    "nothing_to_refund": 409,
}


class CreditsRefused(DomainError):
    """Odoo refused a credit operation for a business reason."""

    title = "Credits refused"

    def __init__(self, code: str, detail: str | None = None, **figures: Any) -> None:
        super().__init__(detail or f"Odoo refused the operation: {code}", code=code, **figures)
        self.code = code
        self.figures = figures
        self.status_code = _REFUSAL_STATUS.get(code, 422)
        self.problem_type = f"/problems/{code.replace('_', '-')}"
        if figures.get("reason") == "too_many_requests_in_flight":
            # the tier's cap on unfinished requests: the client may retry once one finishes
            self.status_code = 429
            self.problem_type = "/problems/too-many-requests-in-flight"


class CreditServiceUnavailable(DomainError):
    status_code = 503
    problem_type = "/problems/credit-service-unavailable"
    title = "Credit service unavailable"


class CreditOutcomeUnknown(CreditServiceUnavailable):
    """The call may have been applied; only Odoo's ledger can tell."""

    problem_type = "/problems/credit-outcome-unknown"


class DispatchUnavailable(DomainError):
    status_code = 503
    problem_type = "/problems/dispatch-unavailable"
    title = "Job dispatch unavailable"

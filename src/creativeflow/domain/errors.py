"""Errors of the product, each carrying the HTTP status and problem type the API gives it.

Every error has a ``detail`` for the operator's log and a ``public_detail`` for the user: a
sentence that says what happened and what to do next, never an internal address, a remote
exception text or a secret. ``public_extensions`` are the stable fields a client may read.

DomainError
├── InvalidTransition           409  a state change the state machine refuses
├── NotFound                    404  unknown id, or somebody else's
├── Conflict                    409  the request is not in a state for this action
├── InvalidEventCursor          422  a Last-Event-ID that is not an event of the request
├── TooManyEventStreams         429  the user has as many event streams open as allowed
├── EventStreamsBusy            503  this process serves as many event streams as it may
├── CreditsRefused              402/403/409/422/429  Odoo refused the debit (a stable code;
│                               429 when the tier's cap on unfinished requests is reached)
├── CreditServiceUnavailable    503  Odoo could not be reached; nothing was charged
│   └── CreditOutcomeUnknown    503  Odoo may have applied the call; recovery settles it
├── DispatchUnavailable         503  the job could not be published
└── AssetCopyFailed                  an asset could not be copied to our storage (never shown
    │                                to a client: the provider's URL is served meanwhile)
    ├── AssetSourceRefused           the provider's answer is not a keepable image: not retried
    ├── AssetSourceUnavailable       the provider's URL did not answer: retried
    └── StorageUnavailable           object storage did not answer: retried
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    status_code = 500
    problem_type = "about:blank"
    title = "Internal error"

    # a fixed sentence for users; None: ``detail`` is already written for them
    user_sentence: str | None = None
    # seconds a client should wait before trying again (``Retry-After``); None: not said
    retry_after: int | None = None

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions

    @property
    def public_detail(self) -> str:
        return self.user_sentence or self.detail

    @property
    def public_extensions(self) -> dict[str, Any]:
        return self.extensions


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


class InvalidEventCursor(DomainError):
    status_code = 422
    problem_type = "/problems/invalid-event-cursor"
    title = "Invalid event cursor"
    user_sentence = (
        "Last-Event-ID is not the id of an event of this request. Resume with the id of the "
        "last event this stream gave you, or leave it out to start from the first event."
    )


class TooManyEventStreams(DomainError):
    status_code = 429
    problem_type = "/problems/too-many-event-streams"
    title = "Too many event streams"

    def __init__(self, limit: int, *, retry_after: int) -> None:
        super().__init__(
            f"You already have {limit} event streams open, the most allowed. Close one, or "
            "read a request with GET /api/v1/generations/{id}, then try again.",
            max_streams_per_user=limit,
        )
        self.retry_after = retry_after


class EventStreamsBusy(DomainError):
    status_code = 503
    problem_type = "/problems/event-streams-busy"
    title = "Event streams busy"
    user_sentence = (
        "This server cannot open another event stream right now. Try again in a few seconds, "
        "with the same Last-Event-ID."
    )

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after

    @property
    def public_extensions(self) -> dict[str, Any]:
        return {}


_REFUSAL_STATUS = {
    "insufficient_credits": 402,
    "tier_forbids": 403,
    "unknown_account": 403,
    "invalid_request": 422,
    "request_conflict": 409,
    "nothing_to_refund": 409,
    "asset_conflict": 409,
    "unknown_debit": 409,
}
_REFUSAL_TITLES = {
    "insufficient_credits": "Not enough credits",
    "tier_forbids": "Not included in your plan",
    "unknown_account": "No credit account",
    "invalid_request": "Request not accepted",
    "request_conflict": "Request conflict",
    "nothing_to_refund": "Nothing to refund",
    "asset_conflict": "Asset already recorded",
    "unknown_debit": "Asset not paid for",
}
# what a tier refusal's reason means to the user, and what they can do about it
_TIER_SENTENCES = {
    "format_not_allowed": "Your plan does not include this output format. Choose another format "
    "or upgrade your plan.",
    "resolution_not_allowed": "Your plan does not include this resolution. Ask for smaller "
    "dimensions or upgrade your plan.",
    "too_many_samples": "Your plan allows fewer samples per request. Ask for fewer samples or "
    "upgrade your plan.",
    "model_not_allowed": "Your plan does not include this model. Choose one of the models your "
    "plan lists, leave the model out to use your plan's default, or upgrade your plan.",
    "too_many_requests_in_flight": "You already have as many requests in progress as your plan "
    "allows. Wait for one to finish, then try again.",
}
# the figures a client may read; anything else Odoo sent (its own text) stays in the log
PUBLIC_FIGURES = frozenset(
    {"reason", "tier", "required", "balance", "requests_in_flight", "max_requests_in_flight"}
)


def _refusal_sentence(code: str, figures: dict[str, Any]) -> str:
    if code == "insufficient_credits":
        required, balance = figures.get("required"), figures.get("balance")
        if isinstance(required, int) and isinstance(balance, int):
            return (
                f"This needs {required} credits and your balance is {balance}. Add credits or "
                "ask for fewer samples, then try again."
            )
        return "Your balance does not cover this request. Add credits, then try again."
    if code == "tier_forbids":
        return _TIER_SENTENCES.get(
            str(figures.get("reason")), "Your plan does not allow this request."
        )
    if code == "unknown_account":
        return "You have no credit account yet. Contact support to have one opened."
    if code == "invalid_request":
        return "The credit service could not price this request. Check its parameters."
    if code == "request_conflict":
        return "This request was already charged to another account. Contact support."
    if code == "asset_conflict":
        return "Another final asset was already recorded for this request. Contact support."
    if code == "unknown_debit":
        return "The credit service has no charge for this asset. Contact support."
    return "The credit service refused this operation."


class CreditsRefused(DomainError):
    """Odoo refused a credit operation for a business reason. ``detail`` is for the log;
    ``public_detail`` tells the user what to do, and the stable ``code`` and the figures that
    explain it are fields of the problem."""

    def __init__(self, code: str, detail: str | None = None, **figures: Any) -> None:
        super().__init__(detail or f"Odoo refused the operation: {code}", code=code, **figures)
        self.code = code
        self.figures = figures
        self.status_code = _REFUSAL_STATUS.get(code, 422)
        self.problem_type = f"/problems/{code.replace('_', '-')}"
        self.title = _REFUSAL_TITLES.get(code, "Credits refused")
        self.user_sentence = _refusal_sentence(code, figures)
        if figures.get("reason") == "too_many_requests_in_flight":
            # the tier's cap on unfinished requests: the client may retry once one finishes
            self.status_code = 429
            self.problem_type = "/problems/too-many-requests-in-flight"
            self.title = "Too many requests in progress"

    @property
    def public_extensions(self) -> dict[str, Any]:
        public = {k: v for k, v in self.figures.items() if k in PUBLIC_FIGURES}
        return {"code": self.code, **public}


class CreditServiceUnavailable(DomainError):
    status_code = 503
    problem_type = "/problems/credit-service-unavailable"
    title = "Credit service unavailable"
    user_sentence = (
        "The credit service is unavailable right now and nothing was charged. "
        "Try again in a few seconds."
    )

    @property
    def public_extensions(self) -> dict[str, Any]:
        return {}  # whatever the transport said names internal hosts


class CreditOutcomeUnknown(CreditServiceUnavailable):
    """The call may have been applied; only Odoo's ledger can tell."""

    problem_type = "/problems/credit-outcome-unknown"
    user_sentence = (
        "The credit service did not confirm the charge. If it was applied, your request goes "
        "on or is refunded automatically; retry with the same Idempotency-Key to be safe."
    )


class DispatchUnavailable(DomainError):
    status_code = 503
    problem_type = "/problems/dispatch-unavailable"
    title = "Job dispatch unavailable"
    user_sentence = (
        "Your request could not be started right now; the credits charged for it are "
        "refunded automatically. Try again in a few seconds."
    )

    @property
    def public_extensions(self) -> dict[str, Any]:
        return {}


class AssetCopyFailed(DomainError):
    """A copy to object storage did not complete. ``permanent``: trying again cannot help."""

    permanent = False


class AssetSourceRefused(AssetCopyFailed):
    """The provider's answer is not an image we keep (wrong host or type, too large, gone)."""

    permanent = True


class AssetSourceUnavailable(AssetCopyFailed):
    """The provider's URL did not answer in time, or answered with a server error."""


class StorageUnavailable(AssetCopyFailed):
    """Object storage did not accept or answer a call."""

"""The generation request aggregate and the records that travel with it."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .credits import GenerationSpec
from .errors import Conflict, InvalidTransition
from .jobs import FailureCategory, Stage
from .states import Status, can_transition

if TYPE_CHECKING:
    from .charges import StageCharge


class CreditOperationStatus(enum.StrEnum):
    """The journal's view of one debit or refund the service attempted."""

    PENDING = "pending"  # written before the Odoo call
    APPLIED = "applied"  # Odoo confirmed it
    REFUSED = "refused"  # Odoo refused it (a business code); nothing moved
    UNKNOWN = "unknown"  # the reply was lost: only Odoo's ledger can tell
    REFUNDED = "refunded"  # a debit whose refund Odoo applied


class CreditOperationKind(enum.StrEnum):
    DEBIT = "debit"
    REFUND = "refund"


@dataclass(frozen=True, slots=True)
class Sample:
    id: str
    url: str
    width: int | None = None
    height: int | None = None
    format: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "width": self.width,
            "height": self.height,
            "format": self.format,
        }


MAX_REPORTED_MESSAGE = 300
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# a stack frame with a file location: "at settle (/app/node_modules/axios/settle.js:19:12)",
# "at /app/x.js:1:2", "at f (node:internal/timers:5:7)"; not "at the moment" nor "at 10:30"
_STACK_FRAME = re.compile(
    r"\s+at\s+(?:[^\s()]+\s+)?\(?(?:node:[^\s()]*|[^\s()]*[\\/][^\s()]*):\d+(?::\d+)?\)?.*$"
)
# a file path of two segments or more, not the path of a URL nor a part of a word or number
_PATH = re.compile(r"(?<![\w:/.\\])(?:[A-Za-z]:)?(?:[\\/][\w.@-]+){2,}[\\/]?")


def user_safe_message(text: str, fallback: str) -> str:
    """What a failure may say to the user: the first line, without stack frames, file paths or
    control characters, at most 300 characters; ``fallback`` when nothing is left."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    first = _PATH.sub("…", _STACK_FRAME.sub("", _CONTROL.sub("", first))).strip()
    if len(first) > MAX_REPORTED_MESSAGE:
        first = first[: MAX_REPORTED_MESSAGE - 1].rstrip() + "…"
    return first or fallback


def _fallback(category: FailureCategory) -> str:
    if category is FailureCategory.CONTENT_POLICY:
        return "The request was declined under the content policy."
    return "The generation failed on our side."


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a request failed, as the user reads it (the API shows ``message`` as it is stored).

    Whoever builds one (n8n's report through the callback, a refusal, a timeout, a row read back),
    ``message`` is cut to :func:`user_safe_message`: no stack trace or server path can reach a
    user, however a report was written.
    """

    category: FailureCategory
    code: str
    message: str

    def __post_init__(self) -> None:
        safe = user_safe_message(self.message, _fallback(self.category))
        object.__setattr__(self, "message", safe)

    @classmethod
    def reported(cls, category: FailureCategory, code: str, message: str) -> Failure:
        """A failure as n8n reported it."""
        return cls(category, code, message)


@dataclass(slots=True)
class GenerationRequest:
    id: str
    user_id: str
    prompt: str
    format: str
    width: int
    height: int
    samples_count: int
    correlation_id: str
    created_at: datetime
    style_guidance: str | None = None
    brand_elements: dict[str, Any] | None = None
    project_id: str | None = None
    advanced_model: bool = False
    model: str | None = None
    status: Status = Status.PENDING
    regeneration_count: int = 0
    samples: list[Sample] = field(default_factory=list)
    selected_sample_id: str | None = None
    final_asset: Sample | None = None
    failure: Failure | None = None
    deadline_at: datetime | None = None
    updated_at: datetime | None = None
    history: list[dict[str, str]] = field(default_factory=list)
    # what each paid step charged and refunded, read from the journal (not stored with the row)
    charges: tuple[StageCharge, ...] = ()

    # --- state machine ------------------------------------------------------------------------

    def transition(self, target: Status, at: datetime) -> None:
        """Move to ``target`` or refuse; every move is recorded with its time."""
        if not can_transition(self.status, target):
            raise InvalidTransition(
                f"a request in {self.status} cannot move to {target}",
                current_status=self.status.value,
                target_status=target.value,
            )
        self.status = target
        self.updated_at = at
        self.history.append({"status": target.value, "at": at.isoformat()})

    def start(self, at: datetime) -> None:
        self.history.append({"status": self.status.value, "at": at.isoformat()})
        self.updated_at = at

    # --- credits ------------------------------------------------------------------------------

    def spec(self) -> GenerationSpec:
        return GenerationSpec(
            format=self.format,
            width=self.width,
            height=self.height,
            samples=self.samples_count,
            advanced_model=self.advanced_model,
        )

    # --- what n8n reports ---------------------------------------------------------------------

    def require_status(self, *allowed: Status, action: str) -> None:
        if self.status not in allowed:
            raise Conflict(
                f"cannot {action} a request in {self.status}",
                current_status=self.status.value,
            )

    def sample(self, sample_id: str) -> Sample:
        for sample in self.samples:
            if sample.id == sample_id:
                return sample
        raise Conflict(f"no sample {sample_id!r} in this request", sample_id=sample_id)

    def fail(self, failure: Failure, at: datetime) -> None:
        target = _END_OF.get(failure.category, Status.FAILED)
        self.transition(target, at)
        self.failure = failure
        self.deadline_at = None


_END_OF = {
    FailureCategory.CONTENT_POLICY: Status.CONTENT_REJECTED,
    FailureCategory.CREDITS_REFUSED: Status.REFUSED,
}


@dataclass(slots=True)
class CreditOperation:
    request_id: str
    user_id: str
    action: str
    kind: CreditOperationKind
    status: CreditOperationStatus
    amount: int | None = None
    ledger_entry_id: int | None = None
    refusal_code: str | None = None
    last_error: str | None = None
    attempts: int = 0
    id: int | None = None


class JobStatus(enum.StrEnum):
    PREPARED = "prepared"  # built and stored, publish not confirmed yet
    PUBLISHED = "published"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SUPERSEDED = "superseded"  # cancelled, timed out, or replaced before its callback came


@dataclass(slots=True)
class Job:
    id: str
    request_id: str
    stage: Stage
    action: str
    attempt: int
    status: JobStatus
    deadline_at: datetime
    payload: dict[str, Any]
    created_at: datetime

"""The generation request aggregate and the records that travel with it."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .actions import ActionKind
from .brief import CreativeBrief
from .credits import GenerationSpec
from .errors import Conflict, InvalidTransition
from .events import RequestEvent, events_of
from .jobs import FailureCategory, Stage
from .states import (
    JOB_TRANSITIONS,
    OPEN_JOBS,
    OPERATION_TRANSITIONS,
    CreditOperationKind,
    CreditOperationStatus,
    JobStatus,
    Status,
    can_transition,
)

if TYPE_CHECKING:
    from .assets import AssetLink
    from .charges import StageCharge


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
    # the model asked for (None: the tier's default), then the one Odoo's first debit granted;
    # every later step of the request asks Odoo for it again
    model: str | None = None
    brief: CreativeBrief = field(default_factory=CreativeBrief)
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
    # where users download each asset now, by (role, asset id): our signed links to the stored
    # copies (not stored with the row; the provider's URLs stand for the others)
    links: dict[tuple[str, str], AssetLink] = field(default_factory=dict)

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
            model=self.model,
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

    def step_dispatched(self, kind: ActionKind, job: Job, at: datetime) -> None:
        """A paid step's job is on its way to n8n: the request waits for its answer, until the
        job's deadline. A regeneration drops the samples it replaces; the final asset records
        the sample it starts from."""
        if self.status is Status.VALIDATING_CREDITS:
            self.transition(Status.PUBLISHING_TO_QUEUE, at)
        if kind is ActionKind.REGENERATION:
            self.regeneration_count += 1
            self.samples = []
        if kind is ActionKind.FINAL:
            self.selected_sample_id = job.payload["parameters"]["selected_sample"]["id"]
        target = Status.PROCESSING_FINAL if kind is ActionKind.FINAL else Status.PROCESSING_SAMPLES
        self.transition(target, at)
        self.deadline_at = job.deadline_at

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
    """One debit or refund in the journal. Its status moves only along
    ``states.OPERATION_TRANSITIONS`` of its kind, through the methods below."""

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

    @classmethod
    def pending_debit(cls, request_id: str, user_id: str, action: str) -> CreditOperation:
        """Journalled before the Odoo call: its first attempt."""
        return cls(
            request_id,
            user_id,
            action,
            CreditOperationKind.DEBIT,
            CreditOperationStatus.PENDING,
            attempts=1,
        )

    def pending_refund(self) -> CreditOperation:
        """The refund of this (applied) debit, journalled before the Odoo call."""
        if self.kind is not CreditOperationKind.DEBIT or self.status not in (
            CreditOperationStatus.APPLIED,
            CreditOperationStatus.REFUNDED,
        ):
            raise InvalidTransition(f"a {self.status} {self.kind} of {self.action} has no refund")
        return CreditOperation(
            self.request_id,
            self.user_id,
            self.action,
            CreditOperationKind.REFUND,
            CreditOperationStatus.PENDING,
            amount=self.amount,
        )

    @property
    def settled(self) -> bool:
        """Odoo's answer is known: nothing is left to ask it."""
        return self.status not in (CreditOperationStatus.PENDING, CreditOperationStatus.UNKNOWN)

    def apply(self, amount: int, ledger_entry_id: int) -> None:
        """Odoo applied it (its receipt, or its ledger's entry)."""
        self._move(CreditOperationStatus.APPLIED)
        self.amount = amount
        self.ledger_entry_id = ledger_entry_id
        self.last_error = None

    def refuse(self, code: str) -> None:
        """Odoo refused it, or its ledger shows it was never applied: nothing moved."""
        self._move(CreditOperationStatus.REFUSED)
        self.refusal_code = code

    def lose_reply(self, error: str) -> None:
        """Odoo may have applied it, but its answer was lost."""
        self._move(CreditOperationStatus.UNKNOWN)
        self.last_error = error

    def retry_later(self, error: str) -> None:
        """A refund attempt that surely applied nothing: recovery tries it again."""
        self._move(CreditOperationStatus.PENDING)
        self.last_error = error

    def reopen(self) -> None:
        """A refused debit moved no credits: its action is paid again, as a new attempt."""
        if self.status is not CreditOperationStatus.REFUSED:
            raise InvalidTransition(f"a {self.status} debit of {self.action} cannot be paid again")
        self._move(CreditOperationStatus.PENDING)
        self.refusal_code = None
        self.attempts += 1

    def count_attempt(self) -> None:
        self.attempts += 1

    def mark_refunded(self) -> None:
        """Its refund was applied: the debit is given back."""
        self._move(CreditOperationStatus.REFUNDED)

    def _move(self, target: CreditOperationStatus) -> None:
        if target not in OPERATION_TRANSITIONS[self.kind][self.status]:
            raise InvalidTransition(
                f"a {self.status} {self.kind} of {self.action} cannot become {target}",
                current_status=self.status.value,
                target_status=target.value,
            )
        self.status = target


@dataclass(slots=True)
class Job:
    """One dispatch of a paid step to n8n. Its status moves only along
    ``states.JOB_TRANSITIONS``."""

    id: str
    request_id: str
    stage: Stage
    action: str
    attempt: int
    status: JobStatus
    deadline_at: datetime
    payload: dict[str, Any]
    created_at: datetime

    @property
    def is_open(self) -> bool:
        """Still waiting to be published or for n8n's answer."""
        return self.status in OPEN_JOBS

    def published(self) -> None:
        self._move(JobStatus.PUBLISHED)

    def grant_model(self, model: str) -> None:
        """The model Odoo's debit granted: the message n8n receives names it."""
        if self.status is not JobStatus.PREPARED:
            raise InvalidTransition(
                f"a {self.status} job was already sent with its model",
                current_status=self.status.value,
                target_status=self.status.value,
            )
        self.payload = {**self.payload, "model": model}

    def succeeded(self) -> None:
        self._move(JobStatus.SUCCEEDED)

    def failed(self) -> None:
        self._move(JobStatus.FAILED)

    def superseded(self) -> None:
        self._move(JobStatus.SUPERSEDED)

    def _move(self, target: JobStatus) -> None:
        if target not in JOB_TRANSITIONS[self.status]:
            raise InvalidTransition(
                f"a {self.status} job cannot become {target}",
                current_status=self.status.value,
                target_status=target.value,
            )
        self.status = target


@dataclass(frozen=True, slots=True)
class RecordChanges:
    """What changed in a :class:`RequestRecord` since it was loaded (or last saved)."""

    request: bool
    new_operations: tuple[CreditOperation, ...]
    changed_operations: tuple[CreditOperation, ...]
    new_jobs: tuple[Job, ...]
    changed_jobs: tuple[Job, ...]
    # those of the changed jobs whose message changed too (the model Odoo granted, at dispatch)
    changed_payloads: tuple[Job, ...]


@dataclass(slots=True)
class RequestRecord:
    """A request with its journal of credit operations and its jobs: the aggregate the
    repository loads and saves together, under the request's row lock, so that no paid step
    changes one of them without the others in view."""

    request: GenerationRequest
    operations: list[CreditOperation]
    jobs: list[Job]
    _loaded: tuple[GenerationRequest, dict[int, CreditOperation], dict[str, Job]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        self.mark_saved()

    # --- reading ------------------------------------------------------------------------------

    def debit(self, action: str) -> CreditOperation | None:
        return self._operation(action, CreditOperationKind.DEBIT)

    def refund(self, action: str) -> CreditOperation | None:
        return self._operation(action, CreditOperationKind.REFUND)

    def job(self, job_id: str) -> Job | None:
        return next((job for job in self.jobs if job.id == job_id), None)

    def open_job(self) -> Job | None:
        """The newest job still waiting to be published or for its callback."""
        open_jobs = [job for job in self.jobs if job.is_open]
        return max(open_jobs, key=lambda job: job.created_at) if open_jobs else None

    def debit_being_paid(self) -> CreditOperation | None:
        """A debit whose Odoo answer is not known yet: another paid step is under way."""
        return next(
            (
                op
                for op in self.operations
                if op.kind is CreditOperationKind.DEBIT and not op.settled
            ),
            None,
        )

    def debits_taken(self) -> dict[str, CreditOperationStatus]:
        return {
            op.action: op.status for op in self.operations if op.kind is CreditOperationKind.DEBIT
        }

    # --- changing -----------------------------------------------------------------------------

    def journal_debit(self, action: str) -> CreditOperation:
        """The pending debit of ``action``: a new one, or a refused one paid again."""
        existing = self.debit(action)
        if existing is not None:
            existing.reopen()
            return existing
        debit = CreditOperation.pending_debit(self.request.id, self.request.user_id, action)
        self.operations.append(debit)
        return debit

    def journal_refund(self, debit: CreditOperation) -> CreditOperation:
        """The refund of an applied debit, journalled once before Odoo is asked."""
        existing = self.refund(debit.action)
        if existing is not None:
            return existing
        refund = debit.pending_refund()
        self.operations.append(refund)
        return refund

    def add_job(self, job: Job) -> None:
        self.jobs.append(job)

    def cancel(self, at: datetime) -> Job | None:
        """Cancel the request. A job still open is superseded, so its result, if one comes, is
        late and changes nothing; the debit that paid for it is journalled for refund, since
        nothing it paid for was delivered. Returns that job, for n8n to be told."""
        self.request.transition(Status.CANCELLED, at)
        self.request.deadline_at = None
        job = self.open_job()
        if job is None:
            return None
        job.superseded()
        debit = self.debit(job.action)
        if debit is not None and debit.status is CreditOperationStatus.APPLIED:
            self.journal_refund(debit)
        return job

    # --- saving -------------------------------------------------------------------------------

    def changes(self) -> RecordChanges:
        request, operations, jobs = self._loaded
        return RecordChanges(
            request=self.request != request,
            new_operations=tuple(op for op in self.operations if op.id is None),
            changed_operations=tuple(
                op for op in self.operations if op.id is not None and op != operations.get(op.id)
            ),
            new_jobs=tuple(job for job in self.jobs if job.id not in jobs),
            changed_jobs=tuple(job for job in self.jobs if job.id in jobs and job != jobs[job.id]),
            changed_payloads=tuple(
                job for job in self.jobs if job.id in jobs and job.payload != jobs[job.id].payload
            ),
        )

    def events(self) -> list[RequestEvent]:
        """What the changes since the record was loaded (or last saved) tell its watchers."""
        request, operations, _ = self._loaded
        changes = self.changes()
        return events_of(
            request,
            self.request,
            changes.new_operations + changes.changed_operations,
            operations,
        )

    def mark_saved(self) -> None:
        """What is now stored: the base :meth:`changes` compares with."""
        self._loaded = (
            copy.deepcopy(self.request),
            {op.id: copy.deepcopy(op) for op in self.operations if op.id is not None},
            {job.id: copy.deepcopy(job) for job in self.jobs},
        )

    def _operation(self, action: str, kind: CreditOperationKind) -> CreditOperation | None:
        return next((op for op in self.operations if op.action == action and op.kind is kind), None)

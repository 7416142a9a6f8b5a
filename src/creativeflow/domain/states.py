"""The states of a generation request, of a credit operation in the journal and of a job, each
with the one table of the transitions allowed between them."""

from __future__ import annotations

import enum


class Status(enum.StrEnum):
    PENDING = "PENDING"
    VALIDATING_CREDITS = "VALIDATING_CREDITS"
    PUBLISHING_TO_QUEUE = "PUBLISHING_TO_QUEUE"
    PROCESSING_SAMPLES = "PROCESSING_SAMPLES"
    AWAITING_SELECTION = "AWAITING_SELECTION"
    PROCESSING_FINAL = "PROCESSING_FINAL"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CONTENT_REJECTED = "CONTENT_REJECTED"
    CANCELLED = "CANCELLED"
    # Odoo refused the debit (credits, tier, cap): nothing was charged and nothing failed
    REFUSED = "REFUSED"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL

    @property
    def is_transient(self) -> bool:
        """States a request must leave by itself before a deadline (invariant 4)."""
        return self in TRANSIENT


TERMINAL = frozenset(
    {Status.COMPLETED, Status.FAILED, Status.CONTENT_REJECTED, Status.CANCELLED, Status.REFUSED}
)
TRANSIENT = frozenset(
    {
        Status.PENDING,
        Status.VALIDATING_CREDITS,
        Status.PUBLISHING_TO_QUEUE,
        Status.PROCESSING_SAMPLES,
        Status.PROCESSING_FINAL,
    }
)

TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.PENDING: frozenset({Status.VALIDATING_CREDITS, Status.FAILED, Status.CANCELLED}),
    Status.VALIDATING_CREDITS: frozenset(
        {Status.PUBLISHING_TO_QUEUE, Status.FAILED, Status.REFUSED}
    ),
    Status.PUBLISHING_TO_QUEUE: frozenset({Status.PROCESSING_SAMPLES, Status.FAILED}),
    # a request being processed may be cancelled: its job's result is no longer wanted
    Status.PROCESSING_SAMPLES: frozenset(
        {Status.AWAITING_SELECTION, Status.FAILED, Status.CONTENT_REJECTED, Status.CANCELLED}
    ),
    # regeneration goes back to PROCESSING_SAMPLES; selection moves on to PROCESSING_FINAL
    Status.AWAITING_SELECTION: frozenset(
        {Status.PROCESSING_SAMPLES, Status.PROCESSING_FINAL, Status.CANCELLED}
    ),
    Status.PROCESSING_FINAL: frozenset(
        {Status.COMPLETED, Status.FAILED, Status.CONTENT_REJECTED, Status.CANCELLED}
    ),
    Status.COMPLETED: frozenset(),
    Status.FAILED: frozenset(),
    Status.CONTENT_REJECTED: frozenset(),
    Status.CANCELLED: frozenset(),
    Status.REFUSED: frozenset(),
}


def can_transition(current: Status, target: Status) -> bool:
    return target in TRANSITIONS[current]


class CreditOperationStatus(enum.StrEnum):
    """The journal's view of one debit or refund the service attempted."""

    PENDING = "pending"  # written before the Odoo call (or a refund to try again)
    APPLIED = "applied"  # Odoo confirmed it
    REFUSED = "refused"  # Odoo refused it (a business code); nothing moved
    UNKNOWN = "unknown"  # the reply was lost: only Odoo's ledger can tell
    REFUNDED = "refunded"  # a debit whose refund Odoo applied


class CreditOperationKind(enum.StrEnum):
    DEBIT = "debit"
    REFUND = "refund"


_OP = CreditOperationStatus
# Odoo's receipt is the truth whenever it arrives: a debit journalled refused (recovery found no
# entry yet) or applied already (the live flow and recovery both settled it) takes it again.
DEBIT_TRANSITIONS: dict[CreditOperationStatus, frozenset[CreditOperationStatus]] = {
    _OP.PENDING: frozenset({_OP.APPLIED, _OP.REFUSED, _OP.UNKNOWN}),
    _OP.UNKNOWN: frozenset({_OP.APPLIED, _OP.REFUSED}),
    _OP.REFUSED: frozenset({_OP.PENDING, _OP.APPLIED}),  # nothing moved: it may be paid again
    _OP.APPLIED: frozenset({_OP.APPLIED, _OP.REFUNDED}),
    _OP.REFUNDED: frozenset(),
}
# A refund is tried until Odoo answers; an answer (applied, or nothing to refund) ends it.
REFUND_TRANSITIONS: dict[CreditOperationStatus, frozenset[CreditOperationStatus]] = {
    _OP.PENDING: frozenset({_OP.APPLIED, _OP.REFUSED, _OP.UNKNOWN, _OP.PENDING}),
    _OP.UNKNOWN: frozenset({_OP.APPLIED, _OP.REFUSED, _OP.UNKNOWN, _OP.PENDING}),
    _OP.APPLIED: frozenset({_OP.APPLIED}),
    _OP.REFUSED: frozenset(),
    _OP.REFUNDED: frozenset(),
}
OPERATION_TRANSITIONS = {
    CreditOperationKind.DEBIT: DEBIT_TRANSITIONS,
    CreditOperationKind.REFUND: REFUND_TRANSITIONS,
}


class JobStatus(enum.StrEnum):
    PREPARED = "prepared"  # built and stored, publish not confirmed yet
    PUBLISHED = "published"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SUPERSEDED = "superseded"  # cancelled, timed out, or replaced before its callback came


JOB_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    # unpaid, compensated, or its debit's outcome settled by recovery: it never leaves
    JobStatus.PREPARED: frozenset({JobStatus.PUBLISHED, JobStatus.SUPERSEDED}),
    # n8n's answer, or a timeout (superseded when refunded, failed when the debit stands)
    JobStatus.PUBLISHED: frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.SUPERSEDED}),
    JobStatus.SUCCEEDED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.SUPERSEDED: frozenset(),
}
OPEN_JOBS = frozenset({JobStatus.PREPARED, JobStatus.PUBLISHED})

"""The generation request's states and the one table of transitions allowed between them."""

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
    Status.PROCESSING_SAMPLES: frozenset(
        {Status.AWAITING_SELECTION, Status.FAILED, Status.CONTENT_REJECTED}
    ),
    # regeneration goes back to PROCESSING_SAMPLES; selection moves on to PROCESSING_FINAL
    Status.AWAITING_SELECTION: frozenset(
        {Status.PROCESSING_SAMPLES, Status.PROCESSING_FINAL, Status.CANCELLED}
    ),
    Status.PROCESSING_FINAL: frozenset({Status.COMPLETED, Status.FAILED, Status.CONTENT_REJECTED}),
    Status.COMPLETED: frozenset(),
    Status.FAILED: frozenset(),
    Status.CONTENT_REJECTED: frozenset(),
    Status.CANCELLED: frozenset(),
    Status.REFUSED: frozenset(),
}


def can_transition(current: Status, target: Status) -> bool:
    return target in TRANSITIONS[current]

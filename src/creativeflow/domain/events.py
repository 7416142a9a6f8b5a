"""What happened to a request, as its owner and the systems around it are told: each status it
moved to, its samples and final asset once ready, its failure, and each credit movement.

The events are derived from what a transaction changed (:func:`events_of`), written in the same
transaction as the change, and numbered by the database in commit order per request. They feed
the live status stream of a request and, for the three result events, the events exchange
(written first, published after the commit: an outbox, so a crash between the two loses none).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .states import CreditOperationKind, CreditOperationStatus, Status

if TYPE_CHECKING:
    from .model import CreditOperation, GenerationRequest


class EventType(enum.StrEnum):
    STATUS_CHANGED = "status_changed"
    SAMPLES_READY = "samples_ready"
    FINAL_READY = "final_ready"
    FAILED = "failed"
    CREDITS_CHARGED = "credits_charged"
    CREDITS_REFUNDED = "credits_refunded"

    @property
    def is_published(self) -> bool:
        """Whether the event also goes to the events exchange, for the systems around us."""
        return self in _PUBLISHED


_PUBLISHED = frozenset({EventType.SAMPLES_READY, EventType.FINAL_READY, EventType.FAILED})

# what a request's arrival in a status tells besides the status itself
_RESULT_OF = {
    Status.AWAITING_SELECTION: EventType.SAMPLES_READY,
    Status.COMPLETED: EventType.FINAL_READY,
    Status.FAILED: EventType.FAILED,
    Status.CONTENT_REJECTED: EventType.FAILED,
}


@dataclass(frozen=True, slots=True)
class RequestEvent:
    """One event of one request; ``id`` is given when it is stored, and only grows."""

    request_id: str
    user_id: str
    type: EventType
    at: datetime
    correlation_id: str
    data: dict[str, Any] = field(default_factory=dict)
    id: int | None = None


def events_of(
    before: GenerationRequest | None,
    after: GenerationRequest,
    operations: tuple[CreditOperation, ...] = (),
    operations_before: dict[int, CreditOperation] | None = None,
) -> list[RequestEvent]:
    """The events of a change: ``before`` is the request as loaded (None: a new request),
    ``after`` as it is saved; ``operations`` are the journal's new and changed operations,
    ``operations_before`` the journal as loaded, by id. A credit movement comes before the
    statuses it led to."""
    events: list[RequestEvent] = []
    seen = len(before.history) if before is not None else 0

    def event(kind: EventType, at: datetime, data: dict[str, Any]) -> RequestEvent:
        return RequestEvent(after.id, after.user_id, kind, at, after.correlation_id, data)

    at = after.updated_at or after.created_at
    loaded = operations_before or {}
    for operation in operations:
        was = loaded.get(operation.id) if operation.id is not None else None
        if operation.status is not CreditOperationStatus.APPLIED:
            continue
        if was is not None and was.status is CreditOperationStatus.APPLIED:
            continue
        kind = (
            EventType.CREDITS_CHARGED
            if operation.kind is CreditOperationKind.DEBIT
            else EventType.CREDITS_REFUNDED
        )
        events.append(
            event(
                kind,
                at,
                {"action": operation.action, "amount": operation.amount},
            )
        )
    for entry in after.history[seen:]:
        at = datetime.fromisoformat(entry["at"])
        status = Status(entry["status"])
        events.append(event(EventType.STATUS_CHANGED, at, {"status": status.value}))
        result = _RESULT_OF.get(status)
        if result is not None and status is after.status:
            events.append(event(result, at, _result_data(after)))
    return events


def _result_data(request: GenerationRequest) -> dict[str, Any]:
    if request.status is Status.AWAITING_SELECTION:
        return {"samples": [sample.to_dict() for sample in request.samples]}
    if request.status is Status.COMPLETED:
        asset = request.final_asset
        return {
            "asset": asset.to_dict() if asset is not None else None,
            "selected_sample_id": request.selected_sample_id,
        }
    failure = request.failure
    return {
        "status": request.status.value,
        "category": failure.category.value if failure else None,
        "code": failure.code if failure else None,
        "message": failure.message if failure else None,
    }


def public_view(event: RequestEvent) -> dict[str, Any]:
    """What a request's owner reads of an event: in a live stream's ``data:`` line and in the
    body of a webhook's post."""
    return {
        "id": event.id,
        "type": event.type.value,
        "request_id": event.request_id,
        "at": event.at.isoformat(),
        "data": event.data,
    }

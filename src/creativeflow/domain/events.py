"""What happened to a request, as its owner and the systems around it are told: each status it
moved to, its samples and final asset once ready, its failure, and each credit movement.

The events are derived from what a transaction changed (:func:`events_of`), written in the same
transaction as the change, and numbered by the database in commit order per request. They feed
the live status stream of a request and, for the three result events, the events exchange
(written first, published after the commit: an outbox, so a crash between the two loses none).
"""

from __future__ import annotations

import enum
import json
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
    # our copy of a sample or of the final asset was stored (a link that does not expire with
    # the provider's): for the request's owner only, never on the events exchange
    ASSET_STORED = "asset_stored"

    @property
    def is_published(self) -> bool:
        """Whether the event also goes to the events exchange, for the systems around us."""
        return self in _PUBLISHED

    @property
    def carries_assets(self) -> bool:
        """Whether the event names assets, whose links are made when it is sent (the journal
        keeps the provider's URLs as they were reported)."""
        return self in _CARRYING_ASSETS


_PUBLISHED = frozenset({EventType.SAMPLES_READY, EventType.FINAL_READY, EventType.FAILED})
_CARRYING_ASSETS = frozenset(
    {EventType.SAMPLES_READY, EventType.FINAL_READY, EventType.ASSET_STORED}
)

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
    refunds = [
        operation
        for operation in operations
        if operation.kind is CreditOperationKind.REFUND
        and (operation.id is None or operation.id not in loaded)
    ]
    for entry in after.history[seen:]:
        at = datetime.fromisoformat(entry["at"])
        status = Status(entry["status"])
        events.append(event(EventType.STATUS_CHANGED, at, {"status": status.value}))
        result = _RESULT_OF.get(status)
        if result is not None and status is after.status:
            events.append(event(result, at, _result_data(after, refunds)))
    return events


def _result_data(
    request: GenerationRequest, refunds: list[CreditOperation] | None = None
) -> dict[str, Any]:
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
        # the credits journalled for refund with the failure (Odoo applies the refund right
        # after the commit, recovery retries it until it is applied); None: nothing is refunded
        "refund": (
            {
                "credits": sum(op.amount for op in refunds),
                "actions": [op.action for op in refunds],
            }
            if refunds
            else None
        ),
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


# --- the events exchange's message --------------------------------------------------------------

EVENT_SCHEMA = "creativeflow.generation-event.v1"


@dataclass(frozen=True, slots=True)
class _Published:
    event_type: str
    routing_key: str


_MESSAGE_OF = {
    EventType.SAMPLES_READY: _Published("AIGenerationSamplesReady", "generation.samples_ready"),
    EventType.FINAL_READY: _Published("AIGenerationFinalAssetReady", "generation.final_ready"),
    EventType.FAILED: _Published("AIGenerationFailed", "generation.failed"),
}


@dataclass(frozen=True, slots=True)
class EventMessage:
    """A stored result event as the events exchange carries it (``creativeflow.generation-
    event.v1``, docs/event-message.schema.json).

    Its bytes depend on the stored event alone, so a re-publish after a crash sends the same
    message with the same ``event_id``: ``<request id>:<sequence>``, the sequence being the
    event's id in ``generation_events`` (it grows with each event of a request, in commit
    order, and is not contiguous). The ``event_id`` is also the AMQP ``message_id``, for
    consumers to de-duplicate on.

    No prompt, brief or other user text travels here besides our own failure sentence: a
    consumer that needs the request reads it through the API.
    """

    event: RequestEvent

    def __post_init__(self) -> None:
        if self.event.id is None:
            raise ValueError("only a stored event (with its id) can be published")
        if not self.event.type.is_published:
            raise ValueError(f"{self.event.type} events are not published")

    @property
    def sequence(self) -> int:
        assert self.event.id is not None
        return self.event.id

    @property
    def event_id(self) -> str:
        return f"{self.event.request_id}:{self.sequence}"

    @property
    def message_id(self) -> str:
        return self.event_id

    @property
    def event_type(self) -> str:
        return _MESSAGE_OF[self.event.type].event_type

    @property
    def routing_key(self) -> str:
        return _MESSAGE_OF[self.event.type].routing_key

    @property
    def correlation_id(self) -> str:
        return self.event.correlation_id

    def encode(self) -> bytes:
        return json.dumps(self.to_json_dict(), separators=(",", ":"), ensure_ascii=False).encode()

    def to_json_dict(self) -> dict[str, Any]:
        event = self.event
        data = event.data
        body: dict[str, Any] = {
            "schema": EVENT_SCHEMA,
            "event_type": self.event_type,
            "event_id": self.event_id,
            "sequence": self.sequence,
            "request_id": event.request_id,
            "user_id": event.user_id,
            "correlation_id": event.correlation_id,
            "occurred_at": event.at.isoformat(),
        }
        if event.type is EventType.SAMPLES_READY:
            body["status"] = Status.AWAITING_SELECTION.value
            body["samples"] = list(data.get("samples") or [])
        elif event.type is EventType.FINAL_READY:
            body["status"] = Status.COMPLETED.value
            body["final_asset"] = data.get("asset")
            body["selected_sample_id"] = data.get("selected_sample_id")
        else:
            body["status"] = data.get("status") or Status.FAILED.value
            body["failure"] = {
                "category": data.get("category"),
                "code": data.get("code"),
                "message": data.get("message"),
            }
            body["refund"] = data.get("refund")
        return body

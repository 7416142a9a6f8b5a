"""Reading and writing the tracking tables inside one SQLAlchemy session (one transaction).

Rows that a state change depends on are read ``FOR UPDATE`` so several replicas never apply one
event twice; sweeps read ``FOR UPDATE SKIP LOCKED`` so replicas share the work.

The hot paths (a submit, a callback) read and write with Core statements on the mapped tables
rather than through the ORM unit of work: the same rows and statements, in the order they are
called, at a fraction of the CPU (the ORM cost about 6 ms per submit; see docs/performance.md).
Nothing here leaves a modified ORM object in the session, so Core writes never race a flush.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    Connection,
    CursorResult,
    Executable,
    Result,
    Table,
    bindparam,
    delete,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from creativeflow.domain.assets import AssetRole, CopyStatus, RecordStatus, StoredAsset
from creativeflow.domain.brief import CreativeBrief
from creativeflow.domain.client_webhooks import ClientWebhook, ClientWebhookStatus
from creativeflow.domain.events import EventType, RequestEvent, events_of
from creativeflow.domain.jobs import FailureCategory, Stage
from creativeflow.domain.model import CreditOperation, Failure, GenerationRequest, Job, Sample
from creativeflow.domain.states import CreditOperationKind, CreditOperationStatus, JobStatus, Status
from creativeflow.services.ports import EarlierClaim, Tracking

from .tables import (
    ClientWebhookRow,
    CreditOperationRow,
    GenerationEventRow,
    GenerationRequestRow,
    IdempotencyKeyRow,
    JobRow,
    ReceivedCallbackRow,
    StoredAssetRow,
)


def _sample(data: dict[str, Any] | None) -> Sample | None:
    if not data:
        return None
    return Sample(
        id=data["id"],
        url=data["url"],
        width=data.get("width"),
        height=data.get("height"),
        format=data.get("format"),
    )


def request_from_row(row: GenerationRequestRow) -> GenerationRequest:
    failure = None
    if row.failure_category:
        failure = Failure(
            category=FailureCategory(row.failure_category),
            code=row.failure_code or "",
            message=row.failure_message or "",
        )
    return GenerationRequest(
        id=row.id,
        user_id=row.user_id,
        prompt=row.prompt,
        format=row.format,
        width=row.width,
        height=row.height,
        samples_count=row.samples_count,
        correlation_id=row.correlation_id,
        created_at=row.created_at,
        style_guidance=row.style_guidance,
        brand_elements=row.brand_elements,
        project_id=row.project_id,
        model=row.model,
        brief=CreativeBrief.from_dict(row.brief),
        status=Status(row.status),
        regeneration_count=row.regeneration_count,
        samples=[s for s in (_sample(d) for d in row.samples) if s is not None],
        selected_sample_id=row.selected_sample_id,
        final_asset=_sample(row.final_asset),
        failure=failure,
        deadline_at=row.deadline_at,
        updated_at=row.updated_at,
        history=list(row.history),
    )


def _rows_changed(result: Result[Any]) -> int:
    """What an UPDATE or DELETE touched (a DML statement's result is a cursor result)."""
    return int(cast(CursorResult[Any], result).rowcount or 0)


_REQUESTS = cast(Table, GenerationRequestRow.__table__)
_OPERATIONS = cast(Table, CreditOperationRow.__table__)
_JOBS = cast(Table, JobRow.__table__)
_CALLBACKS = cast(Table, ReceivedCallbackRow.__table__)
_EVENTS = cast(Table, GenerationEventRow.__table__)
_ASSETS = cast(Table, StoredAssetRow.__table__)
_WEBHOOKS = cast(Table, ClientWebhookRow.__table__)

EVENTS_CHANNEL = "creativeflow_generation_events"
"""The PostgreSQL NOTIFY channel told, on commit, the id of each request with new events."""

# Built once, executed with parameters: building a statement per call costs more CPU than
# running it. The SET columns of an UPDATE are the keys of the parameters given.
_INSERT_REQUEST = insert(_REQUESTS)
_SELECT_REQUEST = select(_REQUESTS).where(_REQUESTS.c.id == bindparam("b_id"))
_LOCK_REQUEST = _SELECT_REQUEST.with_for_update()
_UPDATE_REQUEST = update(_REQUESTS).where(_REQUESTS.c.id == bindparam("b_id"))
_INSERT_OPERATION = insert(_OPERATIONS).returning(_OPERATIONS.c.id)
_UPDATE_OPERATION = update(_OPERATIONS).where(
    _OPERATIONS.c.request_id == bindparam("b_request_id"),
    _OPERATIONS.c.action == bindparam("b_action"),
    _OPERATIONS.c.kind == bindparam("b_kind"),
)
_INSERT_JOB = insert(_JOBS)
_SELECT_JOB = select(_JOBS).where(_JOBS.c.id == bindparam("b_id"))
_UPDATE_JOB = update(_JOBS).where(_JOBS.c.id == bindparam("b_id"))
_RECORD_CALLBACK = (
    insert(_CALLBACKS)
    .on_conflict_do_nothing(index_elements=["webhook_id"])
    .returning(_CALLBACKS.c.webhook_id)
)
_UPDATE_CALLBACK = update(_CALLBACKS).where(_CALLBACKS.c.webhook_id == bindparam("b_id"))
_INSERT_EVENT = insert(_EVENTS)
_NOTIFY_EVENTS = text(f"SELECT pg_notify('{EVENTS_CHANNEL}', :request_id)")
_EVENTS_AFTER = (
    select(_EVENTS)
    .where(_EVENTS.c.request_id == bindparam("b_request_id"), _EVENTS.c.id > bindparam("b_after"))
    .order_by(_EVENTS.c.id)
    .limit(bindparam("b_limit"))
)
_LOCK_PENDING_EVENTS = (
    select(_EVENTS)
    .where(_EVENTS.c.publish_pending)  # as the partial index ix_generation_events_unpublished
    .order_by(_EVENTS.c.id)
    .limit(bindparam("b_limit"))
    .with_for_update(skip_locked=True)
)
_LOCK_PENDING_EVENTS_OF = (
    select(_EVENTS)
    .where(_EVENTS.c.publish_pending, _EVENTS.c.request_id == bindparam("b_request_id"))
    .order_by(_EVENTS.c.id)
    .limit(bindparam("b_limit"))
    .with_for_update(skip_locked=True)
)
_MARK_EVENT_PUBLISHED = update(_EVENTS).where(
    _EVENTS.c.id == bindparam("b_id"), _EVENTS.c.publish_pending
)
_INSERT_ASSET = insert(_ASSETS)
# an attempt's outcome is written only while the copy is pending: a slower attempt that lost
# its lease never overwrites the one that finished
_UPDATE_PENDING_ASSET = update(_ASSETS).where(
    _ASSETS.c.id == bindparam("b_id"), _ASSETS.c.status == CopyStatus.PENDING.value
)
_UPDATE_ASSET = update(_ASSETS).where(_ASSETS.c.id == bindparam("b_id"))
_LOCK_USER = text("SELECT pg_advisory_xact_lock(hashtextextended(:user_id, 0))")
_COUNT_IN_FLIGHT = (
    select(func.count())
    .select_from(_REQUESTS)
    .where(
        _REQUESTS.c.user_id == bindparam("b_user_id"),
        _REQUESTS.c.status.in_([s.value for s in Status if s.is_transient]),
    )
)


def _request_values(request: GenerationRequest) -> dict[str, Any]:
    """Every column of a request's row but its id."""
    failure = request.failure
    return {
        "user_id": request.user_id,
        "status": request.status.value,
        "prompt": request.prompt,
        "format": request.format,
        "width": request.width,
        "height": request.height,
        "samples_count": request.samples_count,
        "style_guidance": request.style_guidance,
        "brand_elements": request.brand_elements,
        "project_id": request.project_id,
        "model": request.model,
        "brief": request.brief.to_dict() if request.brief != CreativeBrief() else None,
        "regeneration_count": request.regeneration_count,
        "samples": [s.to_dict() for s in request.samples],
        "selected_sample_id": request.selected_sample_id,
        "final_asset": request.final_asset.to_dict() if request.final_asset else None,
        "failure_category": failure.category.value if failure else None,
        "failure_code": failure.code if failure else None,
        "failure_message": failure.message if failure else None,
        "correlation_id": request.correlation_id,
        "history": list(request.history),
        "deadline_at": request.deadline_at,
        "created_at": request.created_at,
        "updated_at": request.updated_at or request.created_at,
    }


def _operation_from_row(row: CreditOperationRow) -> CreditOperation:
    return CreditOperation(
        id=row.id,
        request_id=row.request_id,
        user_id=row.user_id,
        action=row.action,
        kind=CreditOperationKind(row.kind),
        status=CreditOperationStatus(row.status),
        amount=row.amount,
        ledger_entry_id=row.ledger_entry_id,
        refusal_code=row.refusal_code,
        last_error=row.last_error,
        attempts=row.attempts,
    )


def _event_from_row(row: Any) -> RequestEvent:
    return RequestEvent(
        request_id=row.request_id,
        user_id=row.user_id,
        type=EventType(row.type),
        at=row.created_at,
        correlation_id=row.correlation_id,
        data=row.data,
        id=row.id,
    )


def _job_from_row(row: JobRow) -> Job:
    return Job(
        id=row.id,
        request_id=row.request_id,
        stage=Stage(row.stage),
        action=row.action,
        attempt=row.attempt,
        status=JobStatus(row.status),
        deadline_at=row.deadline_at,
        payload=row.payload,
        created_at=row.created_at,
    )


def _asset_values(asset: StoredAsset) -> dict[str, Any]:
    """Every column of a stored asset's row but its id."""
    return {
        "request_id": asset.request_id,
        "user_id": asset.user_id,
        "job_id": asset.job_id,
        "role": asset.role.value,
        "asset_id": asset.asset_id,
        "source_url": asset.source_url,
        "storage_key": asset.storage_key,
        "format": asset.format,
        "width": asset.width,
        "height": asset.height,
        "status": asset.status.value,
        "attempts": asset.attempts,
        "last_error": asset.last_error,
        "next_attempt_at": asset.next_attempt_at,
        "checksum_sha256": asset.checksum_sha256,
        "byte_size": asset.byte_size,
        "content_type": asset.content_type,
        "created_at": asset.created_at,
        "stored_at": asset.stored_at,
        **_record_values(asset),
    }


def _record_values(asset: StoredAsset) -> dict[str, Any]:
    """The columns of the final asset's record in Odoo."""
    return {
        "odoo_record_id": asset.odoo_record_id,
        "recorded_at": asset.recorded_at,
        "record_status": asset.record_status.value if asset.record_status else None,
        "record_attempts": asset.record_attempts,
        "next_record_at": asset.next_record_at,
        "record_error": asset.record_error,
    }


def _asset_from_row(row: Any) -> StoredAsset:
    return StoredAsset(
        id=row.id,
        request_id=row.request_id,
        user_id=row.user_id,
        job_id=row.job_id,
        role=AssetRole(row.role),
        asset_id=row.asset_id,
        source_url=row.source_url,
        storage_key=row.storage_key,
        created_at=row.created_at,
        next_attempt_at=row.next_attempt_at,
        format=row.format,
        width=row.width,
        height=row.height,
        status=CopyStatus(row.status),
        attempts=row.attempts,
        last_error=row.last_error,
        checksum_sha256=row.checksum_sha256,
        byte_size=row.byte_size,
        content_type=row.content_type,
        stored_at=row.stored_at,
        odoo_record_id=row.odoo_record_id,
        recorded_at=row.recorded_at,
        record_status=RecordStatus(row.record_status) if row.record_status else None,
        record_attempts=row.record_attempts,
        next_record_at=row.next_record_at,
        record_error=row.record_error,
    )


class TrackingRepository(Tracking):
    """Everything the use cases read and write in one transaction."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._connection: Connection | None = None

    def _run(
        self, statement: Executable, parameters: dict[str, Any] | list[dict[str, Any]]
    ) -> Result[Any]:
        """A prepared Core statement on this transaction's connection: nothing of the ORM's
        (plugins, autoflush) is needed for it, and skipping it saves a third of the CPU."""
        if self._connection is None:
            self._connection = self.session.connection()
        return self._connection.execute(statement, parameters)

    # --- generation requests ------------------------------------------------------------------

    def add_request(self, request: GenerationRequest) -> None:
        self._run(_INSERT_REQUEST, {"id": request.id, **_request_values(request)})
        self.add_events(events_of(None, request))

    def get_request(self, request_id: str, *, for_update: bool = False) -> GenerationRequest | None:
        stmt = _LOCK_REQUEST if for_update else _SELECT_REQUEST
        row = self._run(stmt, {"b_id": request_id}).one_or_none()
        return request_from_row(row) if row else None  # type: ignore[arg-type]

    def save_request(self, request: GenerationRequest) -> None:
        result = self._run(_UPDATE_REQUEST, {"b_id": request.id, **_request_values(request)})
        if not _rows_changed(result):
            raise LookupError(f"generation request {request.id} is not tracked")

    def list_requests(
        self,
        user_id: str,
        *,
        status: Status | None,
        limit: int,
        offset: int,
        project_id: str | None = None,
        created_from: datetime | None = None,
        created_before: datetime | None = None,
    ) -> tuple[list[GenerationRequest], int]:
        where = [GenerationRequestRow.user_id == user_id]
        if status is not None:
            where.append(GenerationRequestRow.status == status.value)
        if project_id is not None:
            where.append(GenerationRequestRow.project_id == project_id)
        if created_from is not None:
            where.append(GenerationRequestRow.created_at >= created_from)
        if created_before is not None:
            where.append(GenerationRequestRow.created_at < created_before)
        total = self.session.scalar(
            select(func.count()).select_from(GenerationRequestRow).where(*where)
        )
        rows = self.session.scalars(
            select(GenerationRequestRow)
            .where(*where)
            .order_by(GenerationRequestRow.created_at.desc(), GenerationRequestRow.id.desc())
            .limit(limit)
            .offset(offset)
        ).all()
        return [request_from_row(r) for r in rows], int(total or 0)

    def lock_user(self, user_id: str) -> None:
        """Serialise one user's submits until this transaction ends (a transaction-level
        advisory lock: nothing to clean up, other users never wait)."""
        self._run(_LOCK_USER, {"user_id": user_id})

    def count_in_flight(self, user_id: str) -> int:
        return int(self._run(_COUNT_IN_FLIGHT, {"b_user_id": user_id}).scalar() or 0)

    def lock_overdue_requests(
        self, now: datetime, limit: int, statuses: Sequence[Status] | None = None
    ) -> list[GenerationRequest]:
        """Transient requests past their deadline, skipping rows another replica holds."""
        wanted = [s.value for s in (statuses or [s for s in Status if s.is_transient])]
        rows = self.session.scalars(
            select(GenerationRequestRow)
            .where(
                GenerationRequestRow.status.in_(wanted),
                GenerationRequestRow.deadline_at < now,
            )
            .order_by(GenerationRequestRow.deadline_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        return [request_from_row(r) for r in rows]

    def requests_created_between(self, since: datetime, until: datetime) -> list[str]:
        return list(
            self.session.scalars(
                select(GenerationRequestRow.id).where(
                    GenerationRequestRow.created_at >= since,
                    GenerationRequestRow.created_at < until,
                )
            )
        )

    # --- credit-operation journal -------------------------------------------------------------

    def add_operation(self, operation: CreditOperation, now: datetime) -> None:
        operation.id = self._run(
            _INSERT_OPERATION,
            {
                "request_id": operation.request_id,
                "user_id": operation.user_id,
                "action": operation.action,
                "kind": operation.kind.value,
                "status": operation.status.value,
                "amount": operation.amount,
                "ledger_entry_id": operation.ledger_entry_id,
                "refusal_code": operation.refusal_code,
                "last_error": operation.last_error,
                "attempts": operation.attempts,
                "created_at": now,
                "updated_at": now,
            },
        ).scalar_one()

    def save_operation(self, operation: CreditOperation, now: datetime) -> None:
        result = self._run(
            _UPDATE_OPERATION,
            {
                "b_request_id": operation.request_id,
                "b_action": operation.action,
                "b_kind": operation.kind.value,
                "status": operation.status.value,
                "amount": operation.amount,
                "ledger_entry_id": operation.ledger_entry_id,
                "refusal_code": operation.refusal_code,
                "last_error": operation.last_error,
                "attempts": operation.attempts,
                "updated_at": now,
            },
        )
        if not _rows_changed(result):
            raise LookupError(
                f"credit operation {operation.kind} {operation.action} of request "
                f"{operation.request_id} is not tracked"
            )

    def operations_for_request(self, request_id: str) -> list[CreditOperation]:
        rows = self.session.execute(
            select(_OPERATIONS)
            .where(_OPERATIONS.c.request_id == request_id)
            .order_by(_OPERATIONS.c.id)
        ).all()
        return [_operation_from_row(r) for r in rows]  # type: ignore[arg-type]

    def operations_for_requests(self, request_ids: Sequence[str]) -> list[CreditOperation]:
        if not request_ids:
            return []
        rows = self.session.execute(
            select(_OPERATIONS)
            .where(_OPERATIONS.c.request_id.in_(list(request_ids)))
            .order_by(_OPERATIONS.c.id)
        ).all()
        return [_operation_from_row(r) for r in rows]  # type: ignore[arg-type]

    def lock_unsettled_operations(
        self,
        kind: CreditOperationKind,
        statuses: Sequence[CreditOperationStatus],
        updated_before: datetime,
        limit: int,
    ) -> list[CreditOperation]:
        rows = self.session.scalars(
            select(CreditOperationRow)
            .where(
                CreditOperationRow.kind == kind.value,
                CreditOperationRow.status.in_([s.value for s in statuses]),
                CreditOperationRow.updated_at < updated_before,
            )
            .order_by(CreditOperationRow.updated_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        return [_operation_from_row(r) for r in rows]

    # --- jobs ---------------------------------------------------------------------------------

    def add_job(self, job: Job) -> None:
        self._run(
            _INSERT_JOB,
            {
                "id": job.id,
                "request_id": job.request_id,
                "stage": job.stage.value,
                "action": job.action,
                "attempt": job.attempt,
                "status": job.status.value,
                "deadline_at": job.deadline_at,
                "payload": job.payload,
                "created_at": job.created_at,
                "updated_at": job.created_at,
            },
        )

    def get_job(self, job_id: str) -> Job | None:
        row = self._run(_SELECT_JOB, {"b_id": job_id}).one_or_none()
        return _job_from_row(row) if row else None  # type: ignore[arg-type]

    def set_job_status(self, job_id: str, status: JobStatus, now: datetime) -> None:
        result = self._run(_UPDATE_JOB, {"b_id": job_id, "status": status.value, "updated_at": now})
        if not _rows_changed(result):
            raise LookupError(f"job {job_id} is not tracked")

    def save_job(self, job: Job, now: datetime) -> None:
        values = {"b_id": job.id, "status": job.status.value, "payload": job.payload}
        result = self._run(_UPDATE_JOB, {**values, "updated_at": now})
        if not _rows_changed(result):
            raise LookupError(f"job {job.id} is not tracked")

    def jobs_for_request(self, request_id: str) -> list[Job]:
        rows = self.session.execute(
            select(_JOBS).where(_JOBS.c.request_id == request_id).order_by(_JOBS.c.created_at)
        ).all()
        return [_job_from_row(r) for r in rows]  # type: ignore[arg-type]

    # --- what happened to requests ------------------------------------------------------------

    def add_events(self, events: Sequence[RequestEvent]) -> None:
        if not events:
            return
        self._run(
            _INSERT_EVENT,
            [
                {
                    "request_id": event.request_id,
                    "user_id": event.user_id,
                    "type": event.type.value,
                    "data": event.data,
                    "correlation_id": event.correlation_id,
                    "created_at": event.at,
                    "publish_pending": event.type.is_published,
                    "published_at": None,
                }
                for event in events
            ],
        )
        # delivered on commit, once per request and transaction (PostgreSQL folds repeats)
        for request_id in dict.fromkeys(event.request_id for event in events):
            self._run(_NOTIFY_EVENTS, {"request_id": request_id})

    def events_after(self, request_id: str, after_id: int, limit: int) -> list[RequestEvent]:
        rows = self._run(
            _EVENTS_AFTER, {"b_request_id": request_id, "b_after": after_id, "b_limit": limit}
        ).all()
        return [_event_from_row(row) for row in rows]

    def lock_pending_events(self, limit: int, request_id: str | None = None) -> list[RequestEvent]:
        if request_id is None:
            rows = self._run(_LOCK_PENDING_EVENTS, {"b_limit": limit}).all()
        else:
            rows = self._run(
                _LOCK_PENDING_EVENTS_OF, {"b_limit": limit, "b_request_id": request_id}
            ).all()
        return [_event_from_row(row) for row in rows]

    def mark_event_published(self, event_id: int, now: datetime) -> None:
        result = self._run(
            _MARK_EVENT_PUBLISHED,
            {"b_id": event_id, "publish_pending": False, "published_at": now},
        )
        if not _rows_changed(result):
            raise LookupError(f"event {event_id} is not waiting to be published")

    # --- stored assets ------------------------------------------------------------------------

    def add_stored_assets(self, assets: Sequence[StoredAsset]) -> None:
        if assets:
            self._run(_INSERT_ASSET, [{"id": a.id, **_asset_values(a)} for a in assets])

    def stored_assets_for_requests(self, request_ids: Sequence[str]) -> list[StoredAsset]:
        if not request_ids:
            return []
        rows = self.session.execute(
            select(_ASSETS)
            .where(_ASSETS.c.request_id.in_(list(request_ids)))
            .order_by(_ASSETS.c.created_at, _ASSETS.c.asset_id)
        ).all()
        return [_asset_from_row(r) for r in rows]

    def claim_due_copies(self, now: datetime, lease: timedelta, limit: int) -> list[StoredAsset]:
        rows = self.session.execute(
            select(_ASSETS)
            .where(
                _ASSETS.c.status == CopyStatus.PENDING.value,
                _ASSETS.c.next_attempt_at <= now,
            )
            .order_by(_ASSETS.c.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        claimed = [_asset_from_row(r) for r in rows]
        for asset in claimed:
            asset.claim(now, lease)
        if claimed:  # one statement for the batch
            self._run(
                _UPDATE_ASSET,
                [
                    {
                        "b_id": asset.id,
                        "attempts": asset.attempts,
                        "next_attempt_at": asset.next_attempt_at,
                    }
                    for asset in claimed
                ],
            )
        return claimed

    def save_stored_asset(self, asset: StoredAsset) -> bool:
        values = _asset_values(asset)
        return bool(_rows_changed(self._run(_UPDATE_PENDING_ASSET, {"b_id": asset.id, **values})))

    def claim_due_records(self, now: datetime, lease: timedelta, limit: int) -> list[StoredAsset]:
        rows = self.session.execute(
            select(_ASSETS)
            .where(
                _ASSETS.c.record_status == RecordStatus.PENDING.value,
                _ASSETS.c.next_record_at <= now,
            )
            .order_by(_ASSETS.c.next_record_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        claimed = [_asset_from_row(r) for r in rows]
        for asset in claimed:
            asset.claim_record(now, lease)
        if claimed:  # one statement for the batch
            self._run(
                _UPDATE_ASSET, [{"b_id": asset.id, **_record_values(asset)} for asset in claimed]
            )
        return claimed

    def save_asset_record(self, asset: StoredAsset) -> None:
        self._run(_UPDATE_ASSET, {"b_id": asset.id, **_record_values(asset)})

    def count_pending_copies(self) -> int:
        return int(
            self.session.scalar(
                select(func.count())
                .select_from(_ASSETS)
                .where(_ASSETS.c.status == CopyStatus.PENDING.value)
            )
            or 0
        )

    # --- clients' webhooks ----------------------------------------------------------------------

    def add_client_webhook(self, request_id: str, user_id: str, url: str, now: datetime) -> None:
        self._run(
            insert(_WEBHOOKS),
            {
                "request_id": request_id,
                "user_id": user_id,
                "url": url,
                "delivered_through": 0,
                "status": ClientWebhookStatus.ACTIVE.value,
                "attempts": 0,
                "last_error": None,
                "next_attempt_at": now,
                "lease_until": None,
                "created_at": now,
            },
        )

    def claim_client_webhooks(
        self, now: datetime, lease_until: datetime, limit: int, request_id: str | None = None
    ) -> list[ClientWebhook]:
        only = "AND w.request_id = :request_id" if request_id is not None else ""
        rows = self._run(
            text(
                "SELECT w.request_id, w.user_id, w.url, w.delivered_through, w.attempts "
                "FROM client_webhooks w "
                "WHERE w.status = 'active' AND w.next_attempt_at <= :now "
                "AND (w.lease_until IS NULL OR w.lease_until < :now) "
                f"{only} "
                "AND EXISTS (SELECT 1 FROM generation_events e "
                "WHERE e.request_id = w.request_id AND e.id > w.delivered_through) "
                "ORDER BY w.next_attempt_at LIMIT :limit FOR UPDATE OF w SKIP LOCKED"
            ),
            {"now": now, "limit": limit, "request_id": request_id},
        ).all()
        claimed = [
            ClientWebhook(r.request_id, r.user_id, r.url, int(r.delivered_through), r.attempts)
            for r in rows
        ]
        if claimed:
            self._run(
                update(_WEBHOOKS)
                .where(_WEBHOOKS.c.request_id.in_([hook.request_id for hook in claimed]))
                .values(lease_until=lease_until),
                {},
            )
        return claimed

    def settle_client_webhook(
        self,
        request_id: str,
        *,
        delivered_through: int,
        attempts: int,
        status: ClientWebhookStatus,
        next_attempt_at: datetime,
        last_error: str | None,
    ) -> None:
        self._run(
            update(_WEBHOOKS)
            .where(_WEBHOOKS.c.request_id == request_id)
            .values(
                delivered_through=func.greatest(_WEBHOOKS.c.delivered_through, delivered_through),
                attempts=attempts,
                status=status.value,
                next_attempt_at=next_attempt_at,
                last_error=last_error,
                lease_until=None,
            ),
            {},
        )

    # --- received callbacks -------------------------------------------------------------------

    def record_callback(
        self,
        webhook_id: str,
        *,
        job_id: str | None,
        request_id: str | None,
        event: str,
        outcome: str,
        now: datetime,
    ) -> bool:
        """Remember a webhook id; False when it was seen before (a replay)."""
        result = self._run(
            _RECORD_CALLBACK,
            {
                "webhook_id": webhook_id,
                "job_id": job_id,
                "request_id": request_id,
                "event": event,
                "outcome": outcome,
                "received_at": now,
            },
        )
        return result.first() is not None

    def set_callback_outcome(self, webhook_id: str, outcome: str) -> None:
        self._run(_UPDATE_CALLBACK, {"b_id": webhook_id, "outcome": outcome})

    def purge_received_callbacks(self, received_before: datetime) -> int:
        return _rows_changed(
            self.session.execute(
                delete(ReceivedCallbackRow).where(ReceivedCallbackRow.received_at < received_before)
            )
        )

    # --- idempotency keys ---------------------------------------------------------------------

    def claim_idempotency_key(
        self,
        *,
        user_id: str,
        scope: str,
        key: str,
        fingerprint: str,
        now: datetime,
        expires_at: datetime,
        request_id: str | None = None,
    ) -> EarlierClaim | None:
        """Claim a key for this call; return the earlier claim when there is one."""
        inserted = self.session.execute(
            insert(IdempotencyKeyRow)
            .values(
                user_id=user_id,
                scope=scope,
                key=key,
                fingerprint=fingerprint,
                status="in_flight",
                request_id=request_id,
                created_at=now,
                expires_at=expires_at,
            )
            .on_conflict_do_nothing()
            .returning(IdempotencyKeyRow.key)
        ).first()
        if inserted is not None:
            return None
        earlier = self.session.scalars(
            select(IdempotencyKeyRow)
            .where(
                IdempotencyKeyRow.user_id == user_id,
                IdempotencyKeyRow.scope == scope,
                IdempotencyKeyRow.key == key,
            )
            .with_for_update()
        ).one()
        return EarlierClaim(
            fingerprint=earlier.fingerprint,
            status=earlier.status,
            response_status=earlier.response_status,
            response_body=earlier.response_body,
        )

    def complete_idempotency_key(
        self, *, user_id: str, scope: str, key: str, status: int, body: dict[str, Any]
    ) -> None:
        row = self.session.get(IdempotencyKeyRow, (user_id, scope, key))
        if row is not None:
            row.status = "done"
            row.response_status = status
            row.response_body = body

    def release_idempotency_key(self, *, user_id: str, scope: str, key: str) -> None:
        """Forget a claim whose call ended without an answer worth replaying (e.g. a 503)."""
        self.session.execute(
            delete(IdempotencyKeyRow).where(
                IdempotencyKeyRow.user_id == user_id,
                IdempotencyKeyRow.scope == scope,
                IdempotencyKeyRow.key == key,
            )
        )

    def release_idempotency_keys_of(self, request_id: str) -> int:
        """Forget unanswered claims of a request recovery has settled, so a retry may go on."""
        result = self.session.execute(
            delete(IdempotencyKeyRow).where(
                IdempotencyKeyRow.request_id == request_id,
                IdempotencyKeyRow.status == "in_flight",
            )
        )
        return _rows_changed(result)

    def purge_expired_idempotency_keys(self, now: datetime) -> int:
        result = self.session.execute(
            delete(IdempotencyKeyRow).where(IdempotencyKeyRow.expires_at < now)
        )
        return _rows_changed(result)

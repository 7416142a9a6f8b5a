"""Reading and writing the tracking tables inside one SQLAlchemy session (one transaction).

Rows that a state change depends on are read ``FOR UPDATE`` so several replicas never apply one
event twice; sweeps read ``FOR UPDATE SKIP LOCKED`` so replicas share the work.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from creativeflow.domain.jobs import FailureCategory, Stage
from creativeflow.domain.model import (
    CreditOperation,
    CreditOperationKind,
    CreditOperationStatus,
    Failure,
    GenerationRequest,
    Job,
    JobStatus,
    Sample,
)
from creativeflow.domain.states import Status

from .tables import (
    CreditOperationRow,
    GenerationRequestRow,
    IdempotencyKeyRow,
    JobRow,
    ReceivedCallbackRow,
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
        advanced_model=row.advanced_model,
        model=row.model,
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


def _copy_request(request: GenerationRequest, row: GenerationRequestRow) -> None:
    row.user_id = request.user_id
    row.status = request.status.value
    row.prompt = request.prompt
    row.format = request.format
    row.width = request.width
    row.height = request.height
    row.samples_count = request.samples_count
    row.style_guidance = request.style_guidance
    row.brand_elements = request.brand_elements
    row.project_id = request.project_id
    row.advanced_model = request.advanced_model
    row.model = request.model
    row.regeneration_count = request.regeneration_count
    row.samples = [s.to_dict() for s in request.samples]
    row.selected_sample_id = request.selected_sample_id
    row.final_asset = request.final_asset.to_dict() if request.final_asset else None
    row.failure_category = request.failure.category.value if request.failure else None
    row.failure_code = request.failure.code if request.failure else None
    row.failure_message = request.failure.message if request.failure else None
    row.correlation_id = request.correlation_id
    row.history = list(request.history)
    row.deadline_at = request.deadline_at
    row.created_at = request.created_at
    row.updated_at = request.updated_at or request.created_at


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


class TrackingRepository:
    """Everything the use cases read and write in one transaction."""

    def __init__(self, session: Session) -> None:
        self.session = session

    # --- generation requests ------------------------------------------------------------------

    def add_request(self, request: GenerationRequest) -> None:
        row = GenerationRequestRow(id=request.id)
        _copy_request(request, row)
        self.session.add(row)

    def get_request(self, request_id: str, *, for_update: bool = False) -> GenerationRequest | None:
        stmt = select(GenerationRequestRow).where(GenerationRequestRow.id == request_id)
        if for_update:
            stmt = stmt.with_for_update()
        row = self.session.scalars(stmt).one_or_none()
        return request_from_row(row) if row else None

    def save_request(self, request: GenerationRequest) -> None:
        row = self.session.get(GenerationRequestRow, request.id)
        if row is None:
            raise LookupError(f"generation request {request.id} is not tracked")
        _copy_request(request, row)

    def list_requests(
        self, user_id: str, *, status: Status | None, limit: int, offset: int
    ) -> tuple[list[GenerationRequest], int]:
        where = [GenerationRequestRow.user_id == user_id]
        if status is not None:
            where.append(GenerationRequestRow.status == status.value)
        total = self.session.scalar(select(func.count()).select_from(GenerationRequestRow).where(*where))
        rows = self.session.scalars(
            select(GenerationRequestRow)
            .where(*where)
            .order_by(GenerationRequestRow.created_at.desc(), GenerationRequestRow.id.desc())
            .limit(limit)
            .offset(offset)
        ).all()
        return [request_from_row(r) for r in rows], int(total or 0)

    def count_in_flight(self, user_id: str) -> int:
        transient = [s.value for s in Status if s.is_transient]
        return int(
            self.session.scalar(
                select(func.count())
                .select_from(GenerationRequestRow)
                .where(
                    GenerationRequestRow.user_id == user_id,
                    GenerationRequestRow.status.in_(transient),
                )
            )
            or 0
        )

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

    def lock_requests_in(
        self, statuses: Sequence[Status], updated_before: datetime, limit: int
    ) -> list[GenerationRequest]:
        rows = self.session.scalars(
            select(GenerationRequestRow)
            .where(
                GenerationRequestRow.status.in_([s.value for s in statuses]),
                GenerationRequestRow.updated_at < updated_before,
            )
            .order_by(GenerationRequestRow.updated_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        return [request_from_row(r) for r in rows]

    def oldest_transient_since(self) -> datetime | None:
        transient = [s.value for s in Status if s.is_transient]
        return self.session.scalar(
            select(func.min(GenerationRequestRow.updated_at)).where(
                GenerationRequestRow.status.in_(transient)
            )
        )

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
        row = CreditOperationRow(
            request_id=operation.request_id,
            user_id=operation.user_id,
            action=operation.action,
            kind=operation.kind.value,
            status=operation.status.value,
            amount=operation.amount,
            ledger_entry_id=operation.ledger_entry_id,
            refusal_code=operation.refusal_code,
            last_error=operation.last_error,
            attempts=operation.attempts,
            created_at=now,
            updated_at=now,
        )
        self.session.add(row)
        self.session.flush()
        operation.id = row.id

    def get_operation(
        self, request_id: str, action: str, kind: CreditOperationKind, *, for_update: bool = False
    ) -> CreditOperation | None:
        stmt = select(CreditOperationRow).where(
            CreditOperationRow.request_id == request_id,
            CreditOperationRow.action == action,
            CreditOperationRow.kind == kind.value,
        )
        if for_update:
            stmt = stmt.with_for_update()
        row = self.session.scalars(stmt).one_or_none()
        return _operation_from_row(row) if row else None

    def save_operation(self, operation: CreditOperation, now: datetime) -> None:
        row = self.session.scalars(
            select(CreditOperationRow).where(
                CreditOperationRow.request_id == operation.request_id,
                CreditOperationRow.action == operation.action,
                CreditOperationRow.kind == operation.kind.value,
            )
        ).one()
        row.status = operation.status.value
        row.amount = operation.amount
        row.ledger_entry_id = operation.ledger_entry_id
        row.refusal_code = operation.refusal_code
        row.last_error = operation.last_error
        row.attempts = operation.attempts
        row.updated_at = now

    def operations_for_request(self, request_id: str) -> list[CreditOperation]:
        rows = self.session.scalars(
            select(CreditOperationRow)
            .where(CreditOperationRow.request_id == request_id)
            .order_by(CreditOperationRow.id)
        ).all()
        return [_operation_from_row(r) for r in rows]

    def operations_for_requests(self, request_ids: Sequence[str]) -> list[CreditOperation]:
        if not request_ids:
            return []
        rows = self.session.scalars(
            select(CreditOperationRow)
            .where(CreditOperationRow.request_id.in_(list(request_ids)))
            .order_by(CreditOperationRow.id)
        ).all()
        return [_operation_from_row(r) for r in rows]

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

    def count_operations(self, status: CreditOperationStatus) -> int:
        return int(
            self.session.scalar(
                select(func.count())
                .select_from(CreditOperationRow)
                .where(CreditOperationRow.status == status.value)
            )
            or 0
        )

    # --- jobs ---------------------------------------------------------------------------------

    def add_job(self, job: Job) -> None:
        self.session.add(
            JobRow(
                id=job.id,
                request_id=job.request_id,
                stage=job.stage.value,
                action=job.action,
                attempt=job.attempt,
                status=job.status.value,
                deadline_at=job.deadline_at,
                payload=job.payload,
                created_at=job.created_at,
                updated_at=job.created_at,
            )
        )

    def get_job(self, job_id: str, *, for_update: bool = False) -> Job | None:
        stmt = select(JobRow).where(JobRow.id == job_id)
        if for_update:
            stmt = stmt.with_for_update()
        row = self.session.scalars(stmt).one_or_none()
        return _job_from_row(row) if row else None

    def set_job_status(self, job_id: str, status: JobStatus, now: datetime) -> None:
        row = self.session.get(JobRow, job_id)
        if row is None:
            raise LookupError(f"job {job_id} is not tracked")
        row.status = status.value
        row.updated_at = now

    def jobs_for_request(self, request_id: str) -> list[Job]:
        rows = self.session.scalars(
            select(JobRow).where(JobRow.request_id == request_id).order_by(JobRow.created_at)
        ).all()
        return [_job_from_row(r) for r in rows]

    def current_job(self, request_id: str) -> Job | None:
        """The newest job of a request still waiting for its callback."""
        row = self.session.scalars(
            select(JobRow)
            .where(
                JobRow.request_id == request_id,
                JobRow.status.in_([JobStatus.PREPARED.value, JobStatus.PUBLISHED.value]),
            )
            .order_by(JobRow.created_at.desc())
            .limit(1)
        ).one_or_none()
        return _job_from_row(row) if row else None

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
        result = self.session.execute(
            insert(ReceivedCallbackRow)
            .values(
                webhook_id=webhook_id,
                job_id=job_id,
                request_id=request_id,
                event=event,
                outcome=outcome,
                received_at=now,
            )
            .on_conflict_do_nothing(index_elements=["webhook_id"])
            .returning(ReceivedCallbackRow.webhook_id)
        )
        return result.first() is not None

    def set_callback_outcome(self, webhook_id: str, outcome: str) -> None:
        row = self.session.get(ReceivedCallbackRow, webhook_id)
        if row is not None:
            row.outcome = outcome

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
    ) -> IdempotencyKeyRow | None:
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
        return self.session.scalars(
            select(IdempotencyKeyRow)
            .where(
                IdempotencyKeyRow.user_id == user_id,
                IdempotencyKeyRow.scope == scope,
                IdempotencyKeyRow.key == key,
            )
            .with_for_update()
        ).one()

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
        return int(result.rowcount or 0)

    def purge_expired_idempotency_keys(self, now: datetime) -> int:
        result = self.session.execute(
            delete(IdempotencyKeyRow).where(IdempotencyKeyRow.expires_at < now)
        )
        return int(result.rowcount or 0)

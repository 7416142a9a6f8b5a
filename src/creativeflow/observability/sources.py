"""Ready-made scrape-time sources for :class:`~creativeflow.observability.metrics.Metrics`.

The composition root may register them (``metrics.watch_tracking(tracking_snapshot(db))``, ...)
or supply its own callables of the same types. Each is called from the ``/metrics`` route's worker
thread, never from the event loop, so blocking I/O is fine here; each costs one short query or one
short broker round trip per scrape (the tracking snapshot is also cached by ``Metrics``).
"""

from __future__ import annotations

import pika
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from creativeflow.adapters.rabbitmq.config import RabbitConfig, connection_parameters
from creativeflow.adapters.rabbitmq.results import ResultsConfig
from creativeflow.adapters.tracking.database import TrackingDatabase
from creativeflow.adapters.tracking.repository import TrackingRepository
from creativeflow.adapters.tracking.tables import (
    CreditOperationRow,
    GenerationEventRow,
    GenerationRequestRow,
    JobRow,
)
from creativeflow.domain.states import TERMINAL, TRANSIENT, JobStatus, Status
from creativeflow.observability.metrics import (
    PoolUsage,
    PoolUsageSource,
    QueueDepth,
    QueueDepthSource,
    TrackingSnapshot,
    TrackingSnapshotSource,
)

UNSETTLED = ("pending", "unknown")


def tracking_snapshot(
    db: TrackingDatabase, *, include_terminal: bool = True, include_outbox: bool = True
) -> TrackingSnapshotSource:
    """Requests per status, the oldest transient request's age, the unsettled journal and the
    events outbox.

    Five aggregate queries in one read transaction. ``include_terminal=False`` counts only the
    states a request passes through: terminal rows only grow, and counting them is an index scan
    that grows with the table. ``include_outbox=False`` (result events off) leaves the outbox
    out: its events wait on purpose, and its age would only grow.
    """
    statuses = None if include_terminal else [s.value for s in Status if s not in TERMINAL]

    def read(repo: TrackingRepository) -> TrackingSnapshot:
        session = repo.session
        pending, oldest_pending = _pending_events(session) if include_outbox else (None, None)
        return TrackingSnapshot(
            requests_by_status=_requests_by_status(session, statuses),
            oldest_transient_age_seconds=_oldest_transient_age(session),
            unsettled_operations=_unsettled_operations(session),
            oldest_awaiting_callback_seconds=_oldest_awaiting_callback(session),
            events_pending=pending,
            oldest_pending_event_seconds=oldest_pending,
            pending_asset_copies=repo.count_pending_copies(),
        )

    return lambda: db.run_sync(read)


def _requests_by_status(session: Session, statuses: list[str] | None) -> dict[str, int]:
    query = select(GenerationRequestRow.status, func.count()).group_by(GenerationRequestRow.status)
    if statuses is not None:
        query = query.where(GenerationRequestRow.status.in_(statuses))
    return {str(status): int(count) for status, count in session.execute(query).all()}


def _oldest_transient_age(session: Session) -> float | None:
    # the database's own clock, so a replica's clock skew does not age requests
    age = session.scalar(
        select(func.extract("epoch", func.now() - func.min(GenerationRequestRow.updated_at))).where(
            GenerationRequestRow.status.in_([s.value for s in TRANSIENT])
        )
    )
    return None if age is None else max(0.0, float(age))


def _oldest_awaiting_callback(session: Session) -> float | None:
    age = session.scalar(
        select(func.extract("epoch", func.now() - func.min(JobRow.updated_at))).where(
            JobRow.status == JobStatus.PUBLISHED.value
        )
    )
    return None if age is None else max(0.0, float(age))


def _pending_events(session: Session) -> tuple[int, float | None]:
    # the partial index ix_generation_events_unpublished holds exactly these rows
    count, age = session.execute(
        select(
            func.count(),
            func.extract("epoch", func.now() - func.min(GenerationEventRow.created_at)),
        ).where(GenerationEventRow.publish_pending)
    ).one()
    return int(count or 0), None if age is None else max(0.0, float(age))


def _unsettled_operations(session: Session) -> dict[tuple[str, str], int]:
    rows = session.execute(
        select(CreditOperationRow.kind, CreditOperationRow.status, func.count())
        .where(CreditOperationRow.status.in_(UNSETTLED))
        .group_by(CreditOperationRow.kind, CreditOperationRow.status)
    ).all()
    return {(str(kind), str(status)): int(count) for kind, status, count in rows}


def queue_depths(
    config: RabbitConfig, *, jobs: bool = True, results: ResultsConfig | None = None
) -> QueueDepthSource:
    """The depth and consumers of the job queue and its dead letters (``jobs``) and of the results
    queue, its retries and its dead letters (``results``), by passive declares on a short-lived
    connection of its own (pika connections are not shared between threads)."""
    queues: list[tuple[str, str]] = []
    if jobs:
        queues += [("jobs", config.queue), ("dead_letter", config.dead_letter_queue)]
    if results is not None:
        queues += [
            ("results", results.queue),
            ("results_retry", results.retry_queue),
            ("results_dead_letter", results.dead_letter_queue),
        ]

    def read() -> list[QueueDepth]:
        connection = pika.BlockingConnection(connection_parameters(config))
        try:
            channel = connection.channel()
            depths = []
            for role, queue in queues:
                declared = channel.queue_declare(queue, passive=True)
                depths.append(
                    QueueDepth(
                        role,
                        queue,
                        int(declared.method.message_count),
                        int(declared.method.consumer_count),
                    )
                )
            return depths
        finally:
            if connection.is_open:
                connection.close()

    return read


def database_pool(
    db: TrackingDatabase, *, capacity: int, pool: str = "database"
) -> PoolUsageSource:
    """SQLAlchemy's connection pool: connections checked out against ``capacity`` (the
    settings' ``DATABASE_POOL_SIZE + DATABASE_MAX_OVERFLOW``, which also sizes the database
    worker threads)."""

    def read() -> list[PoolUsage]:
        checked_out = getattr(db.engine.pool, "checkedout", None)
        in_use = int(checked_out()) if callable(checked_out) else 0
        return [PoolUsage(pool, capacity, min(in_use, capacity))]

    return read

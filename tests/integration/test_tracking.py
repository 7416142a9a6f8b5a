"""The tracking tables on a real PostgreSQL: migrations, the journal's uniqueness, replay
protection, and row locks that let several replicas share work without doing it twice."""

from __future__ import annotations

import select
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg2
import psycopg2.extensions
import pytest
from sqlalchemy import create_engine, inspect
from sqlalchemy.exc import IntegrityError

from creativeflow.adapters.tracking.database import DatabaseConfig, TrackingDatabase
from creativeflow.adapters.tracking.migrate import downgrade, upgrade
from creativeflow.adapters.tracking.repository import EVENTS_CHANNEL, TrackingRepository
from creativeflow.domain.client_webhooks import ClientWebhookStatus
from creativeflow.domain.events import EventType, RequestEvent
from creativeflow.domain.model import CreditOperation, GenerationRequest
from creativeflow.domain.states import CreditOperationKind, CreditOperationStatus, Status
from tests.conftest import create_database, drop_database

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


@pytest.fixture
def db(tracking_database_url: str) -> Iterator[TrackingDatabase]:
    database = TrackingDatabase(DatabaseConfig(url=tracking_database_url, pool_size=4))
    yield database
    database.close()


def a_request(
    user_id: str = "u-1", status: Status = Status.PROCESSING_SAMPLES
) -> GenerationRequest:
    request = GenerationRequest(
        id=str(uuid.uuid4()),
        user_id=user_id,
        prompt="a lighthouse at dawn",
        format="png",
        width=1024,
        height=1024,
        samples_count=2,
        correlation_id="c-1",
        created_at=NOW,
        status=status,
        deadline_at=NOW - timedelta(minutes=1),
    )
    request.start(NOW)
    return request


def test_migrations_go_down_and_up_again() -> None:
    name = f"cf_test_{uuid.uuid4().hex[:12]}"
    url = create_database(name)
    try:
        upgrade(url)
        engine = create_engine(url)
        tables = set(inspect(engine).get_table_names())
        assert {
            "generation_requests",
            "credit_operations",
            "generation_jobs",
            "received_callbacks",
            "idempotency_keys",
        } <= tables
        downgrade(url)
        assert set(inspect(engine).get_table_names()) == {"alembic_version"}
        upgrade(url)
        assert "credit_operations" in inspect(engine).get_table_names()
        engine.dispose()
    finally:
        drop_database(name)


def test_a_request_round_trips_with_its_history(db: TrackingDatabase) -> None:
    request = a_request()
    db.run_sync(lambda repo: repo.add_request(request))
    found = db.run_sync(lambda repo: repo.get_request(request.id))
    assert found is not None
    assert found.status is Status.PROCESSING_SAMPLES
    assert found.history == [{"status": "PROCESSING_SAMPLES", "at": NOW.isoformat()}]


def test_the_journal_holds_one_operation_per_request_action_and_kind(db: TrackingDatabase) -> None:
    request = a_request()

    def journal_twice(repo: TrackingRepository) -> None:
        repo.add_request(request)
        for _ in range(2):
            repo.add_operation(
                CreditOperation(
                    request_id=request.id,
                    user_id=request.user_id,
                    action="samples",
                    kind=CreditOperationKind.DEBIT,
                    status=CreditOperationStatus.PENDING,
                ),
                NOW,
            )

    with pytest.raises(IntegrityError):
        db.run_sync(journal_twice)
    # the failed unit of work left nothing behind
    assert db.run_sync(lambda repo: repo.get_request(request.id)) is None


def _listener(url: str) -> Any:
    connection = psycopg2.connect(url.replace("postgresql+psycopg2://", "postgresql://"))
    connection.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
    with connection.cursor() as cursor:
        cursor.execute(f"LISTEN {EVENTS_CHANNEL}")
    return connection


def _notified(connection: Any) -> list[str]:
    select.select([connection], [], [], 0.5)
    connection.poll()
    told = [n.payload for n in connection.notifies]
    connection.notifies.clear()
    return told


def test_events_are_numbered_read_from_an_id_on_and_announced_on_commit_only(
    db: TrackingDatabase, tracking_database_url: str
) -> None:
    request = a_request()
    listener = _listener(tracking_database_url)
    try:
        db.run_sync(lambda repo: repo.add_request(request))
        assert _notified(listener) == [request.id]
        more = [
            RequestEvent(
                request.id, request.user_id, EventType.CREDITS_CHARGED, NOW, "c-1", {"n": n}
            )
            for n in range(3)
        ]
        db.run_sync(lambda repo: repo.add_events(more))
        assert _notified(listener) == [request.id]  # once per transaction

        def rolled_back(repo: TrackingRepository) -> None:
            repo.add_events(more[:1])
            raise RuntimeError("the unit of work fails")

        with pytest.raises(RuntimeError):
            db.run_sync(rolled_back)
        assert _notified(listener) == []
    finally:
        listener.close()
    events = db.run_sync(lambda repo: repo.events_after(request.id, 0, 100))
    assert [e.type for e in events] == [EventType.STATUS_CHANGED] + [EventType.CREDITS_CHARGED] * 3
    assert [e.data.get("n") for e in events[1:]] == [0, 1, 2]
    ids = [e.id or 0 for e in events]
    assert ids == sorted(ids)
    after_first = db.run_sync(lambda repo: repo.events_after(request.id, ids[0], 2))
    assert [e.id for e in after_first] == ids[1:3]
    assert db.run_sync(lambda repo: repo.events_after("no-such-request", 0, 10)) == []


def test_a_webhook_id_is_accepted_once(db: TrackingDatabase) -> None:
    webhook_id = f"msg_{uuid.uuid4().hex}"

    def record(repo: TrackingRepository) -> bool:
        return repo.record_callback(
            webhook_id, job_id=None, request_id=None, event="failed", outcome="x", now=NOW
        )

    assert db.run_sync(record) is True
    assert db.run_sync(record) is False


def test_two_sweepers_never_take_the_same_overdue_request(db: TrackingDatabase) -> None:
    user = f"sweep-{uuid.uuid4().hex[:8]}"
    requests = [a_request(user) for _ in range(4)]
    db.run_sync(lambda repo: [repo.add_request(r) for r in requests])
    ours = {r.id for r in requests}
    first = db.session()
    second = db.session()
    try:
        with first.begin(), second.begin():
            taken_first = {
                r.id for r in TrackingRepository(first).lock_overdue_requests(NOW, limit=1000)
            } & ours
            taken_second = {
                r.id for r in TrackingRepository(second).lock_overdue_requests(NOW, limit=1000)
            } & ours
            assert taken_first == ours
            assert taken_second == set()
    finally:
        first.close()
        second.close()


def test_idempotency_keys_are_claimed_once_per_user(db: TrackingDatabase) -> None:
    key = uuid.uuid4().hex

    def claim(user: str):  # type: ignore[no-untyped-def]
        def _claim(repo: TrackingRepository):  # type: ignore[no-untyped-def]
            earlier = repo.claim_idempotency_key(
                user_id=user,
                scope="submit",
                key=key,
                fingerprint="f",
                now=NOW,
                expires_at=NOW + timedelta(hours=24),
            )
            return None if earlier is None else earlier.status

        return _claim

    assert db.run_sync(claim("alice")) is None
    assert db.run_sync(claim("alice")) == "in_flight"
    assert db.run_sync(claim("bob")) is None


def test_received_callbacks_older_than_the_retention_are_purged_and_newer_ones_kept(
    db: TrackingDatabase,
) -> None:
    now = datetime.now(UTC)
    old, recent = f"msg_{uuid.uuid4().hex}", f"msg_{uuid.uuid4().hex}"

    def record(repo: TrackingRepository) -> None:
        for webhook_id, at in ((old, now - timedelta(days=8)), (recent, now - timedelta(hours=1))):
            assert repo.record_callback(
                webhook_id, job_id=None, request_id=None, event="failed", outcome="x", now=at
            )

    db.run_sync(record)
    purged = db.run_sync(lambda repo: repo.purge_received_callbacks(now - timedelta(days=7)))
    assert purged >= 1
    # the recent one is still known: its replay is refused; the old one could be recorded anew
    assert (
        db.run_sync(
            lambda repo: repo.record_callback(
                recent, job_id=None, request_id=None, event="failed", outcome="x", now=now
            )
        )
        is False
    )
    assert (
        db.run_sync(
            lambda repo: repo.record_callback(
                old, job_id=None, request_id=None, event="failed", outcome="x", now=now
            )
        )
        is True
    )


def test_the_metrics_see_how_long_the_oldest_dispatched_job_has_waited_for_its_callback(
    db: TrackingDatabase,
) -> None:
    from creativeflow.domain.jobs import Stage
    from creativeflow.domain.model import Job
    from creativeflow.domain.states import JobStatus
    from creativeflow.observability.sources import tracking_snapshot

    request = a_request()
    dispatched = datetime.now(UTC) - timedelta(minutes=20)
    job = Job(
        id=str(uuid.uuid4()),
        request_id=request.id,
        stage=Stage.SAMPLES,
        action="samples",
        attempt=1,
        status=JobStatus.PREPARED,
        deadline_at=dispatched + timedelta(minutes=15),
        payload={},
        created_at=dispatched,
    )

    def store(repo: TrackingRepository) -> None:
        repo.add_request(request)
        repo.add_job(job)
        repo.set_job_status(job.id, JobStatus.PUBLISHED, dispatched)

    db.run_sync(store)
    snapshot = tracking_snapshot(db)()
    assert snapshot.oldest_awaiting_callback_seconds is not None
    assert snapshot.oldest_awaiting_callback_seconds >= 20 * 60
    db.run_sync(lambda repo: repo.set_job_status(job.id, JobStatus.SUCCEEDED, datetime.now(UTC)))
    after = tracking_snapshot(db)()
    assert (after.oldest_awaiting_callback_seconds or 0) < 20 * 60


def _result_events(request: GenerationRequest, count: int) -> list[RequestEvent]:
    return [
        RequestEvent(
            request.id, request.user_id, EventType.FAILED, NOW, "c-1", {"status": "FAILED", "n": n}
        )
        for n in range(count)
    ]


def test_two_relays_never_hold_the_same_pending_event(db: TrackingDatabase) -> None:
    request = a_request()
    db.run_sync(
        lambda repo: (repo.add_request(request), repo.add_events(_result_events(request, 3)))
    )
    first = db.session()
    second = db.session()
    try:
        with first.begin(), second.begin():
            held = [
                e
                for e in TrackingRepository(first).lock_pending_events(10_000)
                if e.request_id == request.id
            ]
            assert [e.data["n"] for e in held] == [0, 1, 2]  # oldest first, status events left out
            others = TrackingRepository(second)
            assert [
                e for e in others.lock_pending_events(10_000) if e.request_id == request.id
            ] == []
            assert others.lock_pending_events(10, request_id=request.id) == []
    finally:
        first.close()
        second.close()
    mine = db.run_sync(lambda repo: repo.lock_pending_events(10, request_id=request.id))
    assert [e.data["n"] for e in mine] == [0, 1, 2]  # released when the first relay ended


def test_an_event_marked_published_leaves_the_outbox_once(db: TrackingDatabase) -> None:
    from creativeflow.observability.sources import tracking_snapshot

    request = a_request()
    db.run_sync(
        lambda repo: (repo.add_request(request), repo.add_events(_result_events(request, 2)))
    )
    before = tracking_snapshot(db)()
    assert before.events_pending is not None and before.events_pending >= 2
    assert before.oldest_pending_event_seconds is not None
    first, second = db.run_sync(lambda repo: repo.lock_pending_events(10, request_id=request.id))
    assert first.id is not None
    db.run_sync(lambda repo: repo.mark_event_published(first.id or 0, datetime.now(UTC)))
    left = db.run_sync(lambda repo: repo.lock_pending_events(10, request_id=request.id))
    assert [e.id for e in left] == [second.id]
    with pytest.raises(LookupError):
        db.run_sync(lambda repo: repo.mark_event_published(first.id or 0, datetime.now(UTC)))
    assert tracking_snapshot(db)().events_pending == before.events_pending - 1
    stored = db.run_sync(lambda repo: repo.events_after(request.id, 0, 100))
    assert [e.id for e in stored if e.type is EventType.FAILED] == [first.id, second.id]  # kept


def test_a_job_granted_its_model_is_stored_with_it_and_its_request_keeps_it(
    db: TrackingDatabase,
) -> None:
    """The job is stored before the debit with a placeholder model; the transaction that records
    its dispatch writes the model Odoo granted to the stored job and to the request."""
    from creativeflow.domain.jobs import Stage
    from creativeflow.domain.model import Job
    from creativeflow.domain.states import JobStatus

    request = a_request()
    now = datetime.now(UTC)
    job = Job(
        id=str(uuid.uuid4()),
        request_id=request.id,
        stage=Stage.SAMPLES,
        action="samples",
        attempt=1,
        status=JobStatus.PREPARED,
        deadline_at=now + timedelta(minutes=15),
        payload={"model": "creativeflow-standard-v1", "parameters": {"prompt": "p"}},
        created_at=now,
    )

    def store(repo: TrackingRepository) -> None:
        repo.add_request(request)
        repo.add_job(job)

    def dispatch(repo: TrackingRepository) -> None:
        record = repo.load_record(request.id)
        assert record is not None
        [stored] = record.jobs
        stored.grant_model("creativeflow-draft-v1")
        stored.published()
        record.request.model = "creativeflow-draft-v1"
        repo.save_record(record, now)

    db.run_sync(store)
    db.run_sync(dispatch)
    found = db.run_sync(lambda repo: repo.get_job(job.id))
    again = db.run_sync(lambda repo: repo.get_request(request.id))
    assert found is not None and again is not None
    assert found.status is JobStatus.PUBLISHED
    assert found.payload == {"model": "creativeflow-draft-v1", "parameters": {"prompt": "p"}}
    assert again.model == "creativeflow-draft-v1"


def test_a_client_webhook_is_claimed_by_one_at_a_time_and_its_cursor_never_goes_back(
    db: TrackingDatabase,
) -> None:
    request = a_request()
    hook = "https://client.example/hooks"

    def submit(repo: TrackingRepository) -> None:
        repo.add_request(request)
        repo.add_client_webhook(request.id, request.user_id, hook, NOW)

    db.run_sync(submit)
    first_event = db.run_sync(lambda repo: repo.events_after(request.id, 0, 1))[0].id or 0
    lease = NOW + timedelta(minutes=2)
    claimed = db.run_sync(lambda repo: repo.claim_client_webhooks(NOW, lease, 10, request.id))
    assert [(c.request_id, c.url, c.delivered_through) for c in claimed] == [(request.id, hook, 0)]
    # while the lease runs nobody else gets it, whether or not it names the request
    assert db.run_sync(lambda repo: repo.claim_client_webhooks(NOW, lease, 10)) == []
    # a claim that holds the row locked makes another claim skip it, not wait
    with db.session() as holding, holding.begin():
        TrackingRepository(holding).claim_client_webhooks(lease, lease, 10, request.id)
        assert db.run_sync(lambda repo: repo.claim_client_webhooks(lease, lease, 10)) == []

    def settle(through: int) -> None:
        db.run_sync(
            lambda repo: repo.settle_client_webhook(
                request.id,
                delivered_through=through,
                attempts=0,
                status=ClientWebhookStatus.ACTIVE,
                next_attempt_at=NOW,
                last_error=None,
            )
        )

    settle(first_event)
    settle(0)  # a late settle of a lease that ran out: the cursor stays
    charged = RequestEvent(request.id, request.user_id, EventType.CREDITS_CHARGED, NOW, "c-1")
    db.run_sync(lambda repo: repo.add_events([charged]))
    again = db.run_sync(lambda repo: repo.claim_client_webhooks(NOW, lease, 10, request.id))
    assert [c.delivered_through for c in again] == [first_event]
    last = db.run_sync(lambda repo: repo.events_after(request.id, 0, 100))[-1].id or 0
    settle(last)
    # caught up: nothing to post, nothing claimed
    assert db.run_sync(lambda repo: repo.claim_client_webhooks(NOW, lease, 10, request.id)) == []

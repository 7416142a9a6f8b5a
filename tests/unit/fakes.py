"""In-memory twins of the ports, for unit tests of the use cases (cosmicpython's fake
repository and unit of work). ``RecordingPublisher`` stands for the job publisher: it records
every job it accepts and can be told to fail; ``RecordingEventPublisher`` likewise for the
events exchange. ``InMemoryTracking`` stands for the tracking
database behind the ``TrackingStore`` port.

``InMemoryTracking`` keeps what the use cases rely on: one transaction per ``run`` that is rolled
back when the work raises, copies in and out (a caller changing a loaded request changes nothing
until it saves it), the unique (request, action, kind) of a credit operation, the ordering of every
list, replayed webhook ids, and idempotency keys claimed once. Row locks need no twin: one event
loop runs one transaction at a time.
"""

from __future__ import annotations

import copy
import hashlib
import io
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

from creativeflow.adapters.rabbitmq.errors import BrokerUnreachable, PublishFailed
from creativeflow.domain.assets import CopyStatus, RecordStatus, StoredAsset, sniff_image_type
from creativeflow.domain.client_webhooks import ClientWebhook, ClientWebhookStatus
from creativeflow.domain.errors import (
    AssetSourceRefused,
    AssetSourceUnavailable,
    StorageUnavailable,
)
from creativeflow.domain.events import EventMessage, RequestEvent, events_of
from creativeflow.domain.jobs import JobCancellation, JobMessage
from creativeflow.domain.model import CreditOperation, GenerationRequest, Job
from creativeflow.domain.states import CreditOperationKind, CreditOperationStatus, JobStatus, Status
from creativeflow.services.ports import EarlierClaim, FetchedAsset, Tracking

T = TypeVar("T")
OperationKey = tuple[str, str, CreditOperationKind]
KeyId = tuple[str, str, str]


@dataclass
class _Key:
    fingerprint: str
    request_id: str | None
    expires_at: datetime
    status: str = "in_flight"
    response_status: int | None = None
    response_body: dict[str, Any] | None = None


@dataclass
class _Webhook:
    user_id: str
    url: str
    delivered_through: int = 0
    status: ClientWebhookStatus = ClientWebhookStatus.ACTIVE
    attempts: int = 0
    last_error: str | None = None
    next_attempt_at: datetime | None = None
    lease_until: datetime | None = None


@dataclass
class _Tables:
    requests: dict[str, GenerationRequest] = field(default_factory=dict)
    operations: dict[OperationKey, tuple[CreditOperation, datetime]] = field(default_factory=dict)
    jobs: dict[str, tuple[Job, datetime]] = field(default_factory=dict)
    callbacks: dict[str, dict[str, Any]] = field(default_factory=dict)
    keys: dict[KeyId, _Key] = field(default_factory=dict)
    events: list[RequestEvent] = field(default_factory=list)
    webhooks: dict[str, _Webhook] = field(default_factory=dict)
    published_at: dict[int, datetime] = field(default_factory=dict)
    assets: dict[str, StoredAsset] = field(default_factory=dict)


class DuplicateRow(Exception):
    """What the database's unique constraints would refuse."""


class _Transaction(Tracking):
    """The ``Tracking`` port over the tables, inside one ``run``."""

    def __init__(self, tables: _Tables, ids: itertools.count[int]) -> None:
        self._t = tables
        self._ids = ids

    # --- requests ------------------------------------------------------------------------

    def add_request(self, request: GenerationRequest) -> None:
        if request.id in self._t.requests:
            raise DuplicateRow(request.id)
        self._t.requests[request.id] = _stored(request)
        self.add_events(events_of(None, request))

    def get_request(self, request_id: str, *, for_update: bool = False) -> GenerationRequest | None:
        found = self._t.requests.get(request_id)
        return copy.deepcopy(found) if found else None

    def save_request(self, request: GenerationRequest) -> None:
        if request.id not in self._t.requests:
            raise LookupError(f"generation request {request.id} is not tracked")
        self._t.requests[request.id] = _stored(request)

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
        found = [
            r
            for r in self._t.requests.values()
            if r.user_id == user_id
            and (status is None or r.status is status)
            and (project_id is None or r.project_id == project_id)
            and (created_from is None or r.created_at >= created_from)
            and (created_before is None or r.created_at < created_before)
        ]
        found.sort(key=lambda r: (r.created_at, r.id), reverse=True)
        return [copy.deepcopy(r) for r in found[offset : offset + limit]], len(found)

    def lock_user(self, user_id: str) -> None:
        return None

    def count_in_flight(self, user_id: str) -> int:
        return sum(
            1 for r in self._t.requests.values() if r.user_id == user_id and r.status.is_transient
        )

    def lock_overdue_requests(
        self, now: datetime, limit: int, statuses: Sequence[Status] | None = None
    ) -> list[GenerationRequest]:
        wanted = set(statuses or [s for s in Status if s.is_transient])
        overdue = [
            r
            for r in self._t.requests.values()
            if r.status in wanted and r.deadline_at is not None and r.deadline_at < now
        ]
        overdue.sort(key=lambda r: r.deadline_at or now)
        return [copy.deepcopy(r) for r in overdue[:limit]]

    def requests_created_between(self, since: datetime, until: datetime) -> list[str]:
        return [r.id for r in self._t.requests.values() if since <= r.created_at < until]

    # --- what happened to requests --------------------------------------------------------

    def add_events(self, events: Sequence[RequestEvent]) -> None:
        for event in events:
            self._t.events.append(replace(event, id=len(self._t.events) + 1))

    def events_after(self, request_id: str, after_id: int, limit: int) -> list[RequestEvent]:
        found = [e for e in self._t.events if e.request_id == request_id and (e.id or 0) > after_id]
        return found[:limit]

    # --- clients' webhooks -----------------------------------------------------------------

    def add_client_webhook(self, request_id: str, user_id: str, url: str, now: datetime) -> None:
        if request_id in self._t.webhooks:
            raise DuplicateRow(request_id)
        self._t.webhooks[request_id] = _Webhook(user_id, url, next_attempt_at=now)

    def claim_client_webhooks(
        self, now: datetime, lease_until: datetime, limit: int, request_id: str | None = None
    ) -> list[ClientWebhook]:
        due = [
            (rid, hook)
            for rid, hook in self._t.webhooks.items()
            if (request_id is None or rid == request_id)
            and hook.status is ClientWebhookStatus.ACTIVE
            and (hook.next_attempt_at is None or hook.next_attempt_at <= now)
            and (hook.lease_until is None or hook.lease_until < now)
            and self.events_after(rid, hook.delivered_through, 1)
        ][:limit]
        for _, hook in due:
            hook.lease_until = lease_until
        return [
            ClientWebhook(rid, h.user_id, h.url, h.delivered_through, h.attempts) for rid, h in due
        ]

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
        hook = self._t.webhooks[request_id]
        hook.delivered_through = max(hook.delivered_through, delivered_through)
        hook.attempts, hook.status, hook.last_error = attempts, status, last_error
        hook.next_attempt_at, hook.lease_until = next_attempt_at, None

    def lock_pending_events(self, limit: int, request_id: str | None = None) -> list[RequestEvent]:
        pending = [
            e
            for e in self._t.events
            if e.type.is_published
            and e.id not in self._t.published_at
            and (request_id is None or e.request_id == request_id)
        ]
        return pending[:limit]

    def mark_event_published(self, event_id: int, now: datetime) -> None:
        if event_id in self._t.published_at:
            raise LookupError(f"event {event_id} is not waiting to be published")
        self._t.published_at[event_id] = now

    # --- the journal ---------------------------------------------------------------------

    def add_operation(self, operation: CreditOperation, now: datetime) -> None:
        key = (operation.request_id, operation.action, operation.kind)
        if key in self._t.operations:
            raise DuplicateRow(str(key))
        operation.id = next(self._ids)
        self._t.operations[key] = (copy.deepcopy(operation), now)

    def save_operation(self, operation: CreditOperation, now: datetime) -> None:
        key = (operation.request_id, operation.action, operation.kind)
        if key not in self._t.operations:
            raise LookupError(f"credit operation {key} is not journalled")
        self._t.operations[key] = (copy.deepcopy(operation), now)

    def operations_for_request(self, request_id: str) -> list[CreditOperation]:
        return self.operations_for_requests([request_id])

    def operations_for_requests(self, request_ids: Sequence[str]) -> list[CreditOperation]:
        wanted = set(request_ids)
        found = [op for op, _ in self._t.operations.values() if op.request_id in wanted]
        return [copy.deepcopy(op) for op in sorted(found, key=lambda op: op.id or 0)]

    def lock_unsettled_operations(
        self,
        kind: CreditOperationKind,
        statuses: Sequence[CreditOperationStatus],
        updated_before: datetime,
        limit: int,
    ) -> list[CreditOperation]:
        found = [
            (op, at)
            for op, at in self._t.operations.values()
            if op.kind is kind and op.status in statuses and at < updated_before
        ]
        found.sort(key=lambda pair: pair[1])
        return [copy.deepcopy(op) for op, _ in found[:limit]]

    # --- jobs ----------------------------------------------------------------------------

    def add_job(self, job: Job) -> None:
        if job.id in self._t.jobs:
            raise DuplicateRow(job.id)
        self._t.jobs[job.id] = (copy.deepcopy(job), job.created_at)

    def get_job(self, job_id: str) -> Job | None:
        found = self._t.jobs.get(job_id)
        return copy.deepcopy(found[0]) if found else None

    def set_job_status(self, job_id: str, status: JobStatus, now: datetime) -> None:
        if job_id not in self._t.jobs:
            raise LookupError(f"job {job_id} is not tracked")
        job, _ = self._t.jobs[job_id]
        self._t.jobs[job_id] = (replace(job, status=status), now)

    def save_job(self, job: Job, now: datetime) -> None:
        if job.id not in self._t.jobs:
            raise LookupError(f"job {job.id} is not tracked")
        self._t.jobs[job.id] = (copy.deepcopy(job), now)

    def jobs_for_request(self, request_id: str) -> list[Job]:
        found = [job for job, _ in self._t.jobs.values() if job.request_id == request_id]
        return [copy.deepcopy(j) for j in sorted(found, key=lambda j: j.created_at)]

    # --- received callbacks --------------------------------------------------------------

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
        if webhook_id in self._t.callbacks:
            return False
        self._t.callbacks[webhook_id] = {
            "job_id": job_id,
            "request_id": request_id,
            "event": event,
            "outcome": outcome,
            "received_at": now,
        }
        return True

    def set_callback_outcome(self, webhook_id: str, outcome: str) -> None:
        if webhook_id in self._t.callbacks:
            self._t.callbacks[webhook_id]["outcome"] = outcome

    def purge_received_callbacks(self, received_before: datetime) -> int:
        gone = [k for k, v in self._t.callbacks.items() if v["received_at"] < received_before]
        for k in gone:
            del self._t.callbacks[k]
        return len(gone)

    # --- idempotency keys ----------------------------------------------------------------

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
        earlier = self._t.keys.get((user_id, scope, key))
        if earlier is None:
            self._t.keys[(user_id, scope, key)] = _Key(fingerprint, request_id, expires_at)
            return None
        return EarlierClaim(
            earlier.fingerprint,
            earlier.status,
            earlier.response_status,
            copy.deepcopy(earlier.response_body),
        )

    def complete_idempotency_key(
        self, *, user_id: str, scope: str, key: str, status: int, body: dict[str, Any]
    ) -> None:
        found = self._t.keys.get((user_id, scope, key))
        if found is not None:
            found.status, found.response_status = "done", status
            found.response_body = copy.deepcopy(body)

    def release_idempotency_key(self, *, user_id: str, scope: str, key: str) -> None:
        self._t.keys.pop((user_id, scope, key), None)

    def release_idempotency_keys_of(self, request_id: str) -> int:
        gone = [
            k
            for k, v in self._t.keys.items()
            if v.request_id == request_id and v.status == "in_flight"
        ]
        for k in gone:
            del self._t.keys[k]
        return len(gone)

    def purge_expired_idempotency_keys(self, now: datetime) -> int:
        gone = [k for k, v in self._t.keys.items() if v.expires_at < now]
        for k in gone:
            del self._t.keys[k]
        return len(gone)

    # --- stored assets -------------------------------------------------------------------

    def add_stored_assets(self, assets: Sequence[StoredAsset]) -> None:
        for asset in assets:
            taken = {(a.job_id, a.asset_id) for a in self._t.assets.values()}
            if asset.id in self._t.assets or (asset.job_id, asset.asset_id) in taken:
                raise DuplicateRow(asset.id)
            self._t.assets[asset.id] = copy.deepcopy(asset)

    def stored_assets_for_requests(self, request_ids: Sequence[str]) -> list[StoredAsset]:
        wanted = set(request_ids)
        found = [copy.deepcopy(a) for a in self._t.assets.values() if a.request_id in wanted]
        return sorted(found, key=lambda a: (a.created_at, a.asset_id))

    def claim_due_copies(self, now: datetime, lease: timedelta, limit: int) -> list[StoredAsset]:
        due = sorted(
            (
                a
                for a in self._t.assets.values()
                if a.status is CopyStatus.PENDING and a.next_attempt_at <= now
            ),
            key=lambda a: a.next_attempt_at,
        )[:limit]
        for asset in due:
            asset.claim(now, lease)
        return [copy.deepcopy(a) for a in due]

    def save_stored_asset(self, asset: StoredAsset) -> bool:
        current = self._t.assets.get(asset.id)
        if current is None or current.status is not CopyStatus.PENDING:
            return False
        self._t.assets[asset.id] = copy.deepcopy(asset)
        return True

    def claim_due_records(self, now: datetime, lease: timedelta, limit: int) -> list[StoredAsset]:
        due = sorted(
            (
                a
                for a in self._t.assets.values()
                if a.record_status is RecordStatus.PENDING
                and a.next_record_at is not None
                and a.next_record_at <= now
            ),
            key=lambda a: a.next_record_at or now,
        )[:limit]
        for asset in due:
            asset.claim_record(now, lease)
        return [copy.deepcopy(a) for a in due]

    def save_asset_record(self, asset: StoredAsset) -> None:
        current = self._t.assets[asset.id]
        for name in (
            "odoo_record_id",
            "recorded_at",
            "record_status",
            "record_attempts",
            "next_record_at",
            "record_error",
        ):
            setattr(current, name, getattr(asset, name))

    def count_pending_copies(self) -> int:
        return sum(1 for a in self._t.assets.values() if a.status is CopyStatus.PENDING)


def _stored(request: GenerationRequest) -> GenerationRequest:
    # what a charge is, and the links, are read each time, never stored with the row
    return replace(copy.deepcopy(request), charges=(), links={})


class InMemoryTracking:
    """Implements ``services.ports.TrackingStore``."""

    def __init__(self) -> None:
        self._tables = _Tables()
        self._ids = itertools.count(1)
        self.transactions = 0
        """Committed transactions, as the real store's counter counts them."""

    def run_sync(self, work: Callable[[Tracking], T]) -> T:
        working = copy.deepcopy(self._tables)
        result = work(_Transaction(working, self._ids))
        self._tables = working  # committed: the work returned
        self.transactions += 1
        return result

    async def run(self, work: Callable[[Tracking], T]) -> T:
        return self.run_sync(work)

    async def ping(self) -> bool:
        return True

    async def aclose(self) -> None:
        """Nothing to release."""

    # --- inspection, for assertions ------------------------------------------------------

    def request(self, request_id: str) -> GenerationRequest:
        return copy.deepcopy(self._tables.requests[request_id])

    def operations(self, request_id: str) -> list[CreditOperation]:
        return _Transaction(self._tables, self._ids).operations_for_request(request_id)

    def jobs(self, request_id: str) -> list[Job]:
        return _Transaction(self._tables, self._ids).jobs_for_request(request_id)

    def requests(self) -> list[GenerationRequest]:
        return [copy.deepcopy(r) for r in self._tables.requests.values()]

    def events(self, request_id: str) -> list[RequestEvent]:
        return [e for e in self._tables.events if e.request_id == request_id]

    def webhook(self, request_id: str) -> _Webhook | None:
        return copy.deepcopy(self._tables.webhooks.get(request_id))

    def stored_assets(self, request_id: str) -> list[StoredAsset]:
        return _Transaction(self._tables, self._ids).stored_assets_for_requests([request_id])


class FakeFetcher:
    """Implements ``services.ports.AssetFetcher`` over a dict of URL -> bytes. A URL it does
    not hold is gone (refused, as a 404 is); ``down`` makes every fetch unavailable."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.down = False
        self.fetched: list[str] = []

    async def fetch(self, url: str) -> FetchedAsset:
        self.fetched.append(url)
        if self.down:
            raise AssetSourceUnavailable("the asset URL did not answer: ConnectError")
        if url not in self.files:
            raise AssetSourceRefused("the asset URL answered HTTP 404")
        body = self.files[url]
        content_type = sniff_image_type(body[:12])
        if content_type is None:
            raise AssetSourceRefused("the asset is not a PNG, JPEG, WebP or TIFF image")
        return FetchedAsset(
            file=io.BytesIO(body),
            byte_size=len(body),
            checksum_sha256=hashlib.sha256(body).hexdigest(),
            content_type=content_type,
        )

    async def aclose(self) -> None:
        """Nothing to release."""


class FakeStorage:
    """Implements ``services.ports.ObjectStorage`` in memory; ``down`` refuses every call.
    Its signed links name the key and the lifetime, as a real signer's do."""

    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, str]] = {}
        self.puts: list[str] = []
        self.down = False

    async def put(self, key: str, asset: FetchedAsset) -> None:
        if self.down:
            raise StorageUnavailable("storage unreachable: EndpointConnectionError")
        asset.file.seek(0)
        self.puts.append(key)
        self.objects[key] = (asset.file.read(), asset.content_type)

    def presign_get(self, key: str, ttl: timedelta) -> str:
        return f"https://storage.test/assets/{key}?X-Amz-Expires={int(ttl.total_seconds())}"

    async def check(self) -> bool:
        return not self.down

    async def aclose(self) -> None:
        """Nothing to release."""


class RecordingPublisher:
    """Records every job it accepts; can be told to fail the next publishes or its health check."""

    def __init__(self) -> None:
        self.published: list[JobMessage] = []
        self.cancelled: list[JobCancellation] = []
        self.attempts = 0
        self.healthy = True
        self._failures: list[PublishFailed] = []

    def fail_next(self, count: int = 1, error: PublishFailed | None = None) -> None:
        """Make the next ``count`` publishes raise ``error``, by default `BrokerUnreachable`."""
        for _ in range(count):
            self._failures.append(error or BrokerUnreachable("simulated broker outage"))

    async def publish(self, job: JobMessage) -> None:
        self.attempts += 1
        if self._failures:
            failure = self._failures.pop(0)
            failure.job_id = failure.job_id or job.job_id
            raise failure
        self.published.append(job)

    async def cancel(self, cancellation: JobCancellation) -> None:
        self.attempts += 1
        if self._failures:
            raise self._failures.pop(0)
        self.cancelled.append(cancellation)

    async def check(self) -> bool:
        return self.healthy

    async def aclose(self) -> None:
        """Nothing to release."""

    def jobs_for(self, request_id: str) -> list[JobMessage]:
        return [job for job in self.published if job.request_id == request_id]

    @property
    def job_ids(self) -> list[str]:
        return [job.job_id for job in self.published]


class RecordingEventPublisher:
    """Implements ``services.ports.EventPublisher``: records every event message the broker
    would have confirmed; can be told to fail the next publishes."""

    def __init__(self) -> None:
        self.published: list[EventMessage] = []
        self.attempts = 0
        self._failures: list[PublishFailed] = []

    def fail_next(self, count: int = 1, error: PublishFailed | None = None) -> None:
        for _ in range(count):
            self._failures.append(error or BrokerUnreachable("simulated broker outage"))

    def publish(self, message: EventMessage) -> None:
        self.attempts += 1
        if self._failures:
            raise self._failures.pop(0)
        self.published.append(message)

    async def aclose(self) -> None:
        """Nothing to release."""

    def of(self, request_id: str) -> list[EventMessage]:
        return [m for m in self.published if m.event.request_id == request_id]

    @property
    def types(self) -> list[str]:
        return [m.event_type for m in self.published]

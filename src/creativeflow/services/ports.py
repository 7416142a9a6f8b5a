"""The ports the use cases talk through. Adapters implement them; tests may use their fakes.

No module under ``services/`` imports an adapter (``tests/unit/test_architecture.py`` checks it):
the composition root hands the use cases an adapter for each port.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import IO, Any, Protocol, TypeVar

from creativeflow.domain.assets import StoredAsset
from creativeflow.domain.client_webhooks import ClientWebhook, ClientWebhookStatus
from creativeflow.domain.credits import (
    CreditReceipt,
    Entitlements,
    GenerationSpec,
    LedgerEntry,
    LedgerPage,
    Quote,
)
from creativeflow.domain.events import EventMessage, RequestEvent
from creativeflow.domain.generated_assets import GeneratedAsset, RecordedAsset
from creativeflow.domain.jobs import JobCancellation, JobMessage
from creativeflow.domain.model import CreditOperation, GenerationRequest, Job, RequestRecord
from creativeflow.domain.notifications import Notification
from creativeflow.domain.states import CreditOperationKind, CreditOperationStatus, JobStatus, Status

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class EarlierClaim:
    """An idempotency key already claimed: by which body, and the answer once there is one."""

    fingerprint: str
    status: str  # "in_flight" or "done"
    response_status: int | None = None
    response_body: dict[str, Any] | None = None


class Tracking(Protocol):
    """The tracking tables inside one transaction. ``for_update``, ``load_record`` and the
    ``lock_*`` reads take row locks until the transaction ends (``SKIP LOCKED`` for the sweeps'
    batches). A request's row lock guards its journal and its jobs: every use case that changes
    them loads the request's record first, so locks are always taken request first."""

    # requests
    def add_request(self, request: GenerationRequest) -> None: ...

    def get_request(
        self, request_id: str, *, for_update: bool = False
    ) -> GenerationRequest | None: ...

    def save_request(self, request: GenerationRequest) -> None: ...

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
    ) -> tuple[list[GenerationRequest], int]: ...

    def lock_user(self, user_id: str) -> None: ...

    def count_in_flight(self, user_id: str) -> int: ...

    def lock_overdue_requests(
        self, now: datetime, limit: int, statuses: Sequence[Status] | None = None
    ) -> list[GenerationRequest]: ...

    def requests_created_between(self, since: datetime, until: datetime) -> list[str]: ...

    # the request with its journal and jobs, as one aggregate (implemented once, here, on the
    # methods below; adapters inherit it by subclassing this protocol)
    def load_record(self, request_id: str) -> RequestRecord | None:
        """The request, locked until the transaction ends, with its journal and its jobs.
        Every writer of a request's operations or jobs locks the request first, so these
        need no lock of their own."""
        request = self.get_request(request_id, for_update=True)
        if request is None:
            return None
        return RequestRecord(
            request, self.operations_for_request(request_id), self.jobs_for_request(request_id)
        )

    def save_record(self, record: RequestRecord, now: datetime) -> None:
        """Write what changed since the record was loaded: the request, new and changed
        operations, new jobs, the status of changed ones and the message of those whose message
        changed."""
        changes = record.changes()
        events = record.events()
        if changes.request:
            self.save_request(record.request)
        for operation in changes.new_operations:
            self.add_operation(operation, now)
        for operation in changes.changed_operations:
            self.save_operation(operation, now)
        for job in changes.new_jobs:
            self.add_job(job)
        for job in changes.changed_jobs:
            if job in changes.changed_payloads:
                self.save_job(job, now)
            else:  # most changes move the status alone: the message is not written again
                self.set_job_status(job.id, job.status, now)
        if events:
            self.add_events(events)
        record.mark_saved()

    # what happened to requests, for their watchers (written with the change that caused it)
    def add_events(self, events: Sequence[RequestEvent]) -> None: ...

    def events_after(self, request_id: str, after_id: int, limit: int) -> list[RequestEvent]: ...

    # clients' webhooks (one a request at most, written with the request)
    def add_client_webhook(
        self, request_id: str, user_id: str, url: str, now: datetime
    ) -> None: ...

    def claim_client_webhooks(
        self, now: datetime, lease_until: datetime, limit: int, request_id: str | None = None
    ) -> list[ClientWebhook]:
        """Active webhooks due at ``now`` with events after what they delivered and no lease
        running (``SKIP LOCKED``), leased until ``lease_until``; of ``request_id`` only, if
        given."""
        ...

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
        """Record how far delivery got and end the lease (``delivered_through`` never goes
        back)."""
        ...

    # the events exchange's outbox: result events not yet confirmed by the broker, oldest
    # first (of one request, or of all), locked ``FOR UPDATE SKIP LOCKED`` until the
    # transaction ends, so two relays never hold the same event
    def lock_pending_events(
        self, limit: int, request_id: str | None = None
    ) -> list[RequestEvent]: ...

    def mark_event_published(self, event_id: int, now: datetime) -> None: ...

    # the journal of credit operations
    def add_operation(self, operation: CreditOperation, now: datetime) -> None: ...

    def save_operation(self, operation: CreditOperation, now: datetime) -> None: ...

    def operations_for_request(self, request_id: str) -> list[CreditOperation]: ...

    def operations_for_requests(self, request_ids: Sequence[str]) -> list[CreditOperation]: ...

    def lock_unsettled_operations(
        self,
        kind: CreditOperationKind,
        statuses: Sequence[CreditOperationStatus],
        updated_before: datetime,
        limit: int,
    ) -> list[CreditOperation]: ...

    # jobs
    def add_job(self, job: Job) -> None: ...

    def get_job(self, job_id: str) -> Job | None: ...

    def set_job_status(self, job_id: str, status: JobStatus, now: datetime) -> None: ...

    def save_job(self, job: Job, now: datetime) -> None:
        """Write a job's status and its message (which names the model Odoo granted)."""
        ...

    def jobs_for_request(self, request_id: str) -> list[Job]: ...

    # received callbacks
    def record_callback(
        self,
        webhook_id: str,
        *,
        job_id: str | None,
        request_id: str | None,
        event: str,
        outcome: str,
        now: datetime,
    ) -> bool: ...

    def set_callback_outcome(self, webhook_id: str, outcome: str) -> None: ...

    def purge_received_callbacks(self, received_before: datetime) -> int: ...

    # stored assets (our copies of what n8n reported)
    def add_stored_assets(self, assets: Sequence[StoredAsset]) -> None: ...

    def stored_assets_for_requests(self, request_ids: Sequence[str]) -> list[StoredAsset]: ...

    def claim_due_copies(self, now: datetime, lease: timedelta, limit: int) -> list[StoredAsset]:
        """Pending copies whose lease or retry time has passed, skipping rows another replica
        holds, each claimed (attempts + 1, leased until ``now + lease``)."""

    def save_stored_asset(self, asset: StoredAsset) -> bool:
        """Write an attempt's outcome; False (and nothing written) when the row is no longer
        pending: another attempt finished first."""

    def claim_due_records(self, now: datetime, lease: timedelta, limit: int) -> list[StoredAsset]:
        """Stored final assets whose record in Odoo is pending and due, skipping rows another
        replica holds, each claimed (record attempts + 1, leased until ``now + lease``)."""

    def save_asset_record(self, asset: StoredAsset) -> None:
        """Write the outcome of an attempt to record the asset in Odoo."""

    def count_pending_copies(self) -> int: ...

    # idempotency keys
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
    ) -> EarlierClaim | None: ...

    def complete_idempotency_key(
        self, *, user_id: str, scope: str, key: str, status: int, body: dict[str, Any]
    ) -> None: ...

    def release_idempotency_key(self, *, user_id: str, scope: str, key: str) -> None: ...

    def release_idempotency_keys_of(self, request_id: str) -> int: ...

    def purge_expired_idempotency_keys(self, now: datetime) -> int: ...


class TrackingStore(Protocol):
    """The unit of work: runs ``work`` in one transaction, committed if it returns, rolled back
    if it raises."""

    async def run(self, work: Callable[[Tracking], T]) -> T: ...

    def run_sync(self, work: Callable[[Tracking], T]) -> T: ...

    async def ping(self) -> bool: ...

    async def aclose(self) -> None: ...


class CreditLedger(Protocol):
    """Odoo's credit service. Refusals raise ``CreditsRefused``; faults raise
    ``CreditServiceUnavailable``."""

    async def get_entitlements(self, user_id: str) -> Entitlements: ...

    async def debit(
        self,
        user_id: str,
        request_id: str,
        action: str,
        spec: GenerationSpec,
        correlation_id: str,
    ) -> CreditReceipt: ...

    async def refund(
        self, request_id: str, action: str, reason: str, correlation_id: str
    ) -> CreditReceipt: ...

    async def ledger_by_requests(self, request_ids: Sequence[str]) -> tuple[LedgerEntry, ...]: ...

    async def ledger_window(
        self, since: datetime, until: datetime, limit: int = 1000, offset: int = 0
    ) -> LedgerPage: ...

    async def quote(self, user_id: str, spec: GenerationSpec) -> Quote:
        """What a new request with ``spec`` would cost and whether the tier allows it."""

    async def ledger_for_user(self, user_id: str, limit: int = 20, offset: int = 0) -> LedgerPage:
        """The user's own ledger entries, newest first."""

    async def record_generated_asset(self, asset: GeneratedAsset) -> RecordedAsset:
        """Record a request's final asset in Odoo with the debits that paid for it, once per
        request: the same asset again is the first record (``created`` False); other values for
        a recorded request, an unknown user or debit are refused (``CreditsRefused``, codes
        ``asset_conflict``, ``unknown_account``, ``unknown_debit``, ``request_conflict``,
        ``invalid_request``). A lost reply is ``CreditOutcomeUnknown``: call it again."""

    async def ping(self) -> bool: ...

    async def aclose(self) -> None:
        """Wait for the calls in flight, then release every connection."""


class JobPublisher(Protocol):
    """Raises ``DispatchUnavailable`` when the broker did not confirm the message."""

    async def publish(self, job: JobMessage) -> None: ...

    # tells n8n a job is no longer wanted (its request was cancelled)
    async def cancel(self, cancellation: JobCancellation) -> None: ...

    async def check(self) -> bool: ...

    async def aclose(self) -> None: ...


class EventPublisher(Protocol):
    """The events exchange. ``publish`` blocks until the broker confirmed the message, within
    the adapter's own timeout, and raises ``DispatchUnavailable`` otherwise: the relay calls it
    inside the transaction that holds the outbox rows, so an event is marked published only
    once it is confirmed."""

    def publish(self, message: EventMessage) -> None: ...

    async def aclose(self) -> None: ...


class ResultsIntake(Protocol):
    """Where n8n's results arrive besides the callback routes (the results queue's consumer)."""

    async def check(self) -> bool:
        """Readiness: results are being taken (connected and consuming)."""
        ...


class Notifier(Protocol):
    """Sends after the commit; a failure is logged and counted, never raised into the flow."""

    def send(self, notification: Notification) -> None: ...

    async def aclose(self) -> None:
        """Send what is in flight, then release the connections."""


@dataclass(frozen=True, slots=True)
class FetchedAsset:
    """A downloaded asset, spooled to a temporary file: its bytes, their SHA-256 (hex), size
    and the image type their signature proves. ``close`` removes the file."""

    file: IO[bytes]
    byte_size: int
    checksum_sha256: str
    content_type: str

    def close(self) -> None:
        self.file.close()


class AssetFetcher(Protocol):
    """Downloads a provider's asset URL. Raises ``AssetSourceRefused`` (not an image we keep:
    retrying cannot help) or ``AssetSourceUnavailable`` (retry later)."""

    async def fetch(self, url: str) -> FetchedAsset: ...

    async def aclose(self) -> None: ...


class ObjectStorage(Protocol):
    """The bucket our copies live in. Faults raise ``StorageUnavailable``."""

    async def put(self, key: str, asset: FetchedAsset) -> None:
        """Store ``asset`` under ``key`` (overwriting: the same key always gets the same
        bytes), with its content type and checksum."""

    def presign_get(self, key: str, ttl: timedelta) -> str:
        """A signed GET URL of ``key`` valid for ``ttl`` (computed locally, no call)."""

    async def check(self) -> bool:
        """Whether the bucket answers."""

    async def aclose(self) -> None: ...


class ClientWebhookSender(Protocol):
    """Posts one event to a client's webhook, signed; raises ``ClientWebhookUndelivered`` when
    the receiver did not accept it."""

    async def send(self, url: str, message_id: str, body: bytes) -> None: ...

    async def aclose(self) -> None: ...


class Clock(Protocol):
    def now(self) -> datetime: ...

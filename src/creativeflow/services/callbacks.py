"""What n8n reports about a job: samples ready, final asset ready, or a failure.

One transaction records the callback's ``webhook-id`` (a replay is refused), locks the job and its
request, and applies the event. Duplicates and late events (for a job already settled, timed out or
replaced) are acknowledged and recorded with no change. A platform failure is refunded after the
commit; a content-policy rejection is not. Then the result event the change wrote is published to
the events exchange (``outbox.py``), and the user is notified.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field

from creativeflow import correlation
from creativeflow.domain.assets import StoredAsset
from creativeflow.domain.errors import Conflict, DomainError, NotFound
from creativeflow.domain.jobs import CallbackEvent, FailureCategory, Stage
from creativeflow.domain.model import Failure, GenerationRequest, Job, RequestRecord, Sample
from creativeflow.domain.notifications import Notification, NotificationType
from creativeflow.domain.states import CreditOperationStatus, JobStatus, Status

from .assets import AssetKeeper
from .outbox import EventRelay
from .ports import Clock, Notifier, Tracking, TrackingStore
from .refunds import Refunder

log = logging.getLogger(__name__)


class CallbackOutcome(enum.StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"  # the same event for this job was applied before
    LATE = "late"  # the job was already settled, timed out or replaced
    REPLAYED = "replayed"  # this webhook-id was received before


class JobNotDispatchedYet(DomainError):
    """The callback overtook our own bookkeeping of the publish: n8n should retry shortly."""

    status_code = 503
    problem_type = "/problems/job-not-dispatched-yet"
    title = "Job not dispatched yet"


@dataclass(frozen=True, slots=True)
class CallbackReport:
    webhook_id: str
    event: CallbackEvent
    job_id: str
    request_id: str
    samples: tuple[Sample, ...] = ()
    asset: Sample | None = None
    failure: Failure | None = None
    raw_error: dict[str, object] | None = None


@dataclass(slots=True)
class _Applied:
    outcome: CallbackOutcome
    request: GenerationRequest | None = None
    refund_action: str | None = None
    notifications: list[Notification] = field(default_factory=list)
    # the copies to object storage this callback owes (written with it, run after the commit)
    copies: list[StoredAsset] = field(default_factory=list)


class CallbackService:
    def __init__(
        self,
        db: TrackingStore,
        refunder: Refunder,
        notifier: Notifier,
        clock: Clock,
        *,
        refund_on_system_failure: bool = True,
        detailed_error_logging: bool = False,
        events: EventRelay | None = None,
        assets: AssetKeeper | None = None,
    ) -> None:
        self._assets = assets
        self._db = db
        self._refunder = refunder
        self._notifier = notifier
        self._clock = clock
        self._refund_on_system_failure = refund_on_system_failure
        self._detailed_error_logging = detailed_error_logging
        self._events = events

    async def handle(self, report: CallbackReport) -> CallbackOutcome:
        self._log_failure_report(report)
        applied = await self._db.run(lambda repo: self._apply(repo, report))
        if applied.request is not None:
            # from here on (refund, notifications, logs) the request's own id follows the work
            correlation.set_current(applied.request.correlation_id)
            log.info(
                "callback %s for job %s of request %s: %s",
                report.event,
                report.job_id,
                applied.request.id,
                applied.outcome,
                extra={"request_id": applied.request.id, "job_id": report.job_id},
            )
        if applied.refund_action and applied.request is not None:
            result = await self._refunder.refund(
                applied.request.id,
                applied.refund_action,
                f"platform_failure:{report.failure.code if report.failure else 'unknown'}",
                applied.request.correlation_id,
            )
            if result.receipt is not None:
                applied.notifications.append(_refunded(applied.request, result.receipt.amount))
        if self._events is not None and applied.outcome is CallbackOutcome.APPLIED:
            assert applied.request is not None
            self._events.schedule(applied.request.id)
        if applied.copies and self._assets is not None:
            # n8n is answered now; the user is told once our copies are stored
            self._assets.after_commit(applied.copies, applied.notifications)
            return applied.outcome
        for notification in applied.notifications:
            self._notifier.send(notification)
        return applied.outcome

    def _apply(self, repo: Tracking, report: CallbackReport) -> _Applied:
        now = self._clock.now()
        first_time = repo.record_callback(
            report.webhook_id,
            job_id=report.job_id,
            request_id=report.request_id,
            event=report.event.value,
            outcome="received",
            now=now,
        )
        if not first_time:
            return _Applied(CallbackOutcome.REPLAYED)
        found = repo.get_job(report.job_id)
        if found is None or found.request_id != report.request_id:
            raise NotFound("no such job for this request", job_id=report.job_id)
        _check_event_fits_stage(report.event, found)
        # the request's lock guards its jobs and journal: the job is read again under it
        record = repo.load_record(found.request_id)
        assert record is not None
        job = record.job(found.id)
        assert job is not None
        applied = self._apply_to(repo, report, record, job)
        repo.set_callback_outcome(report.webhook_id, applied.outcome.value)
        return applied

    def _apply_to(
        self,
        repo: Tracking,
        report: CallbackReport,
        record: RequestRecord,
        job: Job,
    ) -> _Applied:
        request = record.request
        if job.status is JobStatus.PREPARED:
            raise JobNotDispatchedYet(
                "the job's dispatch is still being recorded; retry shortly", job_id=job.id
            )
        if job.status is not JobStatus.PUBLISHED:
            outcome = (
                CallbackOutcome.DUPLICATE
                if _same_event(job.status, report.event)
                else CallbackOutcome.LATE
            )
            log.info(
                "callback %s for job %s acknowledged without change (%s)",
                report.event,
                job.id,
                outcome,
                extra={"request_id": request.id, "job_id": job.id},
            )
            return _Applied(outcome, request)
        now = self._clock.now()
        if report.event is CallbackEvent.FAILED:
            return self._apply_failure(repo, report, record, job)
        if report.event is CallbackEvent.SAMPLES_READY:
            request.samples = list(report.samples)
            request.transition(Status.AWAITING_SELECTION, now)
            notification = _samples_ready(request)
        else:
            assert report.asset is not None
            request.final_asset = report.asset
            request.transition(Status.COMPLETED, now)
            notification = _completed(request)
        request.deadline_at = None
        job.succeeded()
        repo.save_record(record, now)
        copies = self._assets.plan(request, job.id, job.stage) if self._assets else []
        repo.add_stored_assets(copies)
        return _Applied(
            CallbackOutcome.APPLIED, request, notifications=[notification], copies=copies
        )

    def _apply_failure(
        self,
        repo: Tracking,
        report: CallbackReport,
        record: RequestRecord,
        job: Job,
    ) -> _Applied:
        now = self._clock.now()
        request = record.request
        assert report.failure is not None
        request.fail(report.failure, now)
        job.failed()
        refund_action = None
        if report.failure.category is FailureCategory.PLATFORM and self._refund_on_system_failure:
            debit = record.debit(job.action)
            if debit is not None and debit.status is CreditOperationStatus.APPLIED:
                record.journal_refund(debit)
                refund_action = job.action
        repo.save_record(record, now)
        return _Applied(
            CallbackOutcome.APPLIED,
            request,
            refund_action=refund_action,
            notifications=[_failed(request)],
        )

    def _log_failure_report(self, report: CallbackReport) -> None:
        if report.failure is None:
            return
        extra: dict[str, object] = {"request_id": report.request_id, "job_id": report.job_id}
        if self._detailed_error_logging and report.raw_error is not None:
            extra["n8n_error"] = report.raw_error
        log.warning(
            "n8n reports job %s failed: %s/%s",
            report.job_id,
            report.failure.category,
            report.failure.code,
            extra=extra,
        )


def _check_event_fits_stage(event: CallbackEvent, job: Job) -> None:
    fits = (
        event is CallbackEvent.FAILED
        or (event is CallbackEvent.SAMPLES_READY and job.stage is Stage.SAMPLES)
        or (event is CallbackEvent.FINAL_READY and job.stage is Stage.FINAL)
    )
    if not fits:
        raise Conflict(f"a {event} event does not fit a {job.stage} job", job_id=job.id)


def _same_event(status: JobStatus, event: CallbackEvent) -> bool:
    if status is JobStatus.SUCCEEDED:
        return event is not CallbackEvent.FAILED
    return status is JobStatus.FAILED and event is CallbackEvent.FAILED


def _samples_ready(request: GenerationRequest) -> Notification:
    return Notification(
        user_id=request.user_id,
        type=NotificationType.SAMPLES_READY,
        request_id=request.id,
        title="Your samples are ready",
        message=f"{len(request.samples)} samples are ready to choose from.",
        correlation_id=request.correlation_id,
        data={"samples": [s.to_dict() for s in request.samples]},
    )


def _completed(request: GenerationRequest) -> Notification:
    assert request.final_asset is not None
    return Notification(
        user_id=request.user_id,
        type=NotificationType.COMPLETED,
        request_id=request.id,
        title="Your creative is ready",
        message="The final asset is ready to download.",
        correlation_id=request.correlation_id,
        data={"asset": request.final_asset.to_dict()},
    )


def _failed(request: GenerationRequest) -> Notification:
    failure = request.failure
    rejected = request.status is Status.CONTENT_REJECTED
    return Notification(
        user_id=request.user_id,
        type=NotificationType.CONTENT_REJECTED if rejected else NotificationType.FAILED,
        request_id=request.id,
        title="Your request was rejected" if rejected else "Your generation failed",
        message=(
            "The request was rejected by the content policy."
            if rejected
            else "The generation failed on our side."
        ),
        correlation_id=request.correlation_id,
        data={"code": failure.code if failure else None},
    )


def _refunded(request: GenerationRequest, amount: int) -> Notification:
    return Notification(
        user_id=request.user_id,
        type=NotificationType.CREDITS_REFUNDED,
        request_id=request.id,
        title="Credits refunded",
        message=f"{amount} credits were refunded to your balance.",
        correlation_id=request.correlation_id,
        data={"amount": amount},
    )

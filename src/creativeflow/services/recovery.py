"""Recovery: settle whatever a crash, a lost reply or a silent n8n left behind.

Safe with several replicas: every sweep step takes its rows ``FOR UPDATE SKIP LOCKED``.
The rules (also in docs/decisions.md):

1. A debit whose outcome is unknown (or still pending after the grace period) is settled against
   Odoo's ledger, never guessed. If Odoo did debit it but the job was never confirmed published,
   the debit is refunded and the job superseded: the client was answered with an error (or not at
   all), so the work is not dispatched late. If Odoo holds no debit, the attempt is closed as not
   applied. A request still waiting for that debit is then FAILED.
2. A refund that did not complete is retried until Odoo has applied it (Odoo refunds once).
3. A request past its stage deadline is FAILED with a timeout reason, its open job superseded,
   the stage's debit refunded and the user notified. A PENDING request past its deadline was
   never charged: it is FAILED. A job that was dispatched and never answered is a platform
   failure, refunded only while ``ENABLE_CREDIT_REFUND_ON_SYSTEM_FAILURE`` is on; a debit whose
   job was never dispatched is always refunded (docs/decisions.md, "Refunds and the toggle").
4. A copy of an asset to object storage that is due (its lease or retry time passed: a crash,
   an outage) is tried again, and a stored final asset Odoo has not recorded yet is recorded
   (``services/assets.py``).
5. Every result event still waiting in the outbox (a crash or a broker outage after its change
   committed) is published, oldest first, after the steps above, so the failures they made go
   out in the same sweep (``services/outbox.py``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from creativeflow.domain.credits import LedgerEntry
from creativeflow.domain.errors import CreditServiceUnavailable
from creativeflow.domain.jobs import FailureCategory
from creativeflow.domain.model import CreditOperation, Failure
from creativeflow.domain.notifications import Notification, NotificationType
from creativeflow.domain.states import CreditOperationKind, CreditOperationStatus, JobStatus, Status

from .assets import AssetKeeper
from .outbox import EventRelay
from .ports import Clock, CreditLedger, Notifier, Tracking, TrackingStore
from .refunds import Refunder

log = logging.getLogger(__name__)

MAX_BATCHES_PER_STEP = 1000
WAITING_FOR_DEBIT = (Status.PENDING, Status.VALIDATING_CREDITS, Status.PUBLISHING_TO_QUEUE)
PROCESSING = (Status.PROCESSING_SAMPLES, Status.PROCESSING_FINAL)


@dataclass
class SweepReport:
    debits_settled: int = 0
    debits_refunded: int = 0
    refunds_applied: int = 0
    refunds_left: int = 0
    requests_timed_out: int = 0
    keys_purged: int = 0
    callbacks_purged: int = 0
    assets_stored: int = 0
    assets_retrying: int = 0
    assets_failed: int = 0
    assets_recorded: int = 0
    asset_records_left: int = 0
    events_published: int = 0
    events_failed: int = 0
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"debits settled: {self.debits_settled}, refunded after settling: "
            f"{self.debits_refunded}, refunds applied: {self.refunds_applied}, refunds left: "
            f"{self.refunds_left}, requests timed out: {self.requests_timed_out}, "
            f"idempotency keys purged: {self.keys_purged}, callbacks purged: "
            f"{self.callbacks_purged}, assets stored: {self.assets_stored}, asset copies "
            f"retrying: {self.assets_retrying}, asset copies given up: {self.assets_failed}, "
            f"final assets recorded in Odoo: {self.assets_recorded}, left: "
            f"{self.asset_records_left}"
            f", events published: {self.events_published}"
            + (f", events not published: {self.events_failed}" if self.events_failed else "")
            + (f", errors: {'; '.join(self.errors)}" if self.errors else "")
        )


@dataclass(frozen=True, slots=True)
class _RefundDue:
    request_id: str
    action: str
    reason: str
    correlation_id: str


_TIMED_OUT = (
    "No result arrived in time. Nothing is owed for this step: any credits it used are refunded."
)
_TIMED_OUT_NOT_REFUNDED = (
    "No result arrived in time. The credits for this step are not refunded automatically: "
    "contact support to have them reviewed."
)


class Recovery:
    def __init__(
        self,
        db: TrackingStore,
        credits: CreditLedger,
        refunder: Refunder,
        notifier: Notifier,
        clock: Clock,
        *,
        grace: timedelta = timedelta(seconds=60),
        batch: int = 100,
        refund_on_system_failure: bool = True,
        callback_retention: timedelta = timedelta(days=7),
        assets: AssetKeeper | None = None,
        events: EventRelay | None = None,
    ) -> None:
        self._assets = assets
        self._db = db
        self._credits = credits
        self._refunder = refunder
        self._notifier = notifier
        self._clock = clock
        self._grace = grace
        self._batch = batch
        self._refund_on_system_failure = refund_on_system_failure
        self._callback_retention = callback_retention
        self._events = events

    async def sweep(self) -> SweepReport:
        report = SweepReport()
        for step in (
            self._settle_debits,
            self._expire_overdue,
            self._retry_refunds,
            self._purge_expired_keys,
            self._purge_old_callbacks,
            self._copy_assets,
            self._record_assets,
            self._publish_events,
        ):
            try:
                # a full batch may mean more rows wait: go on until a batch comes back short
                for _ in range(MAX_BATCHES_PER_STEP):
                    if await step(report) < self._batch:
                        break
            except CreditServiceUnavailable as fault:
                report.errors.append(f"{step.__name__}: {type(fault).__name__}")
                log.warning("recovery step %s stopped: Odoo unavailable", step.__name__)
        return report

    # --- 1. unknown debits --------------------------------------------------------------------

    async def _settle_debits(self, report: SweepReport) -> int:
        before = self._clock.now() - self._grace
        debits = await self._db.run(
            lambda repo: repo.lock_unsettled_operations(
                CreditOperationKind.DEBIT,
                (CreditOperationStatus.UNKNOWN, CreditOperationStatus.PENDING),
                before,
                self._batch,
            )
        )
        if not debits:
            return 0
        entries = await self._credits.ledger_by_requests(sorted({op.request_id for op in debits}))
        refunds = await self._db.run(lambda repo: self._apply_ledger(repo, debits, entries, report))
        await self._refund_all(refunds, report)
        return len(debits)

    def _apply_ledger(
        self,
        repo: Tracking,
        debits: list[CreditOperation],
        entries: tuple[LedgerEntry, ...],
        report: SweepReport,
    ) -> list[_RefundDue]:
        now = self._clock.now()
        refunds: list[_RefundDue] = []
        for stale in debits:
            record = repo.load_record(stale.request_id)
            assert record is not None
            request = record.request
            debit = record.debit(stale.action)
            if debit is None or debit.settled:
                continue  # settled meanwhile by the live flow
            found = {
                e.operation: e
                for e in entries
                if e.request_id == debit.request_id and e.action == debit.action
            }
            for job in record.jobs:  # never published: it is not sent now
                if job.action == debit.action and job.status is JobStatus.PREPARED:
                    job.superseded()
            if "debit" in found:
                entry = found["debit"]
                debit.apply(entry.amount, entry.id)
                record.journal_refund(debit)
                refunds.append(
                    _RefundDue(
                        debit.request_id,
                        debit.action,
                        "dispatch_unconfirmed",
                        request.correlation_id,
                    )
                )
            else:
                debit.refuse("not_applied")
            repo.release_idempotency_keys_of(request.id)
            if request.status in WAITING_FOR_DEBIT:
                request.fail(
                    Failure(
                        FailureCategory.PLATFORM,
                        "credit_outcome_unknown",
                        "the credit service did not confirm the debit in time; nothing is owed",
                    ),
                    now,
                )
            repo.save_record(record, now)
            report.debits_settled += 1
        return refunds

    # --- 2. overdue requests ------------------------------------------------------------------

    async def _expire_overdue(self, report: SweepReport) -> int:
        taken, refunds, notices = await self._db.run(lambda repo: self._time_out(repo, report))
        await self._refund_all(refunds, report)
        for notice in notices:
            self._notifier.send(notice)
        return taken

    def _time_out(
        self, repo: Tracking, report: SweepReport
    ) -> tuple[int, list[_RefundDue], list[Notification]]:
        now = self._clock.now()
        refunds: list[_RefundDue] = []
        notices: list[Notification] = []
        # requests waiting on a debit are settled against the ledger by step 1 first
        overdue = repo.lock_overdue_requests(
            now, self._batch, statuses=(Status.PENDING, *PROCESSING)
        )
        for locked in overdue:
            record = repo.load_record(locked.id)
            assert record is not None
            request = record.request
            open_job = record.open_job()
            refunded = True  # nothing was charged, or it is refunded here
            if open_job is not None:
                dispatched = open_job.status is JobStatus.PUBLISHED
                debit = record.debit(open_job.action)
                paid = debit is not None and debit.status is CreditOperationStatus.APPLIED
                # a job that never left is owed back in any case; one n8n never answered is a
                # platform failure, refunded as the operators' toggle says, and kept on record
                # as dispatched work that failed when its debit stands
                refunded = not (paid and dispatched and not self._refund_on_system_failure)
                if refunded:
                    open_job.superseded()
                else:
                    open_job.failed()
                if paid and refunded:
                    assert debit is not None
                    record.journal_refund(debit)
                    refunds.append(
                        _RefundDue(request.id, open_job.action, "timeout", request.correlation_id)
                    )
            sentence = _TIMED_OUT if refunded else _TIMED_OUT_NOT_REFUNDED
            request.fail(Failure(FailureCategory.PLATFORM, "timeout", sentence), now)
            repo.save_record(record, now)
            report.requests_timed_out += 1
            notices.append(
                Notification(
                    user_id=request.user_id,
                    type=NotificationType.FAILED,
                    request_id=request.id,
                    title="Your generation timed out",
                    message=sentence,
                    correlation_id=request.correlation_id,
                    data={"code": "timeout", "refunded": refunded},
                )
            )
        return len(overdue), refunds, notices

    async def _purge_expired_keys(self, report: SweepReport) -> int:
        now = self._clock.now()
        report.keys_purged += await self._db.run(
            lambda repo: repo.purge_expired_idempotency_keys(now)
        )
        return 0

    async def _purge_old_callbacks(self, report: SweepReport) -> int:
        before = self._clock.now() - self._callback_retention
        report.callbacks_purged += await self._db.run(
            lambda repo: repo.purge_received_callbacks(before)
        )
        return 0

    # --- 4. asset copies ---------------------------------------------------------------------

    async def _copy_assets(self, report: SweepReport) -> int:
        if self._assets is None:
            return 0
        claimed, copies = await self._assets.copy_due(self._batch)
        report.assets_stored += copies.stored
        report.assets_retrying += copies.retrying
        report.assets_failed += copies.failed
        report.assets_recorded += copies.recorded
        report.asset_records_left += copies.records_left
        return claimed

    async def _record_assets(self, report: SweepReport) -> int:
        if self._assets is None:
            return 0
        claimed, records = await self._assets.record_due(self._batch)
        report.assets_recorded += records.recorded
        report.asset_records_left += records.records_left
        return claimed

    # --- 5. result events ---------------------------------------------------------------------

    async def _publish_events(self, report: SweepReport) -> int:
        if self._events is None:
            return 0
        relayed = await self._events.publish_batch()
        report.events_published += relayed.published
        report.events_failed += relayed.failed
        if relayed.failed:
            report.errors.append("_publish_events: the events exchange did not confirm")
            return 0  # the broker is failing: the next sweep tries again
        # a full batch may mean more are pending: tell the loop to go on
        return self._batch if relayed.taken >= self._events.batch else 0

    # --- 3. refunds ---------------------------------------------------------------------------

    async def _retry_refunds(self, report: SweepReport) -> int:
        before = self._clock.now() - self._grace
        refunds = await self._db.run(
            lambda repo: repo.lock_unsettled_operations(
                CreditOperationKind.REFUND,
                (CreditOperationStatus.PENDING, CreditOperationStatus.UNKNOWN),
                before,
                self._batch,
            )
        )

        def _correlation_ids(repo: Tracking) -> dict[str, str]:
            found = (repo.get_request(r.request_id) for r in refunds)
            return {r.id: r.correlation_id for r in found if r is not None}

        correlation_ids = await self._db.run(_correlation_ids) if refunds else {}
        due = [
            _RefundDue(
                refund.request_id,
                refund.action,
                "recovery_retry",
                correlation_ids.get(refund.request_id, refund.request_id),
            )
            for refund in refunds
        ]
        await self._refund_all(due, report)
        return len(refunds)

    async def _refund_all(self, due: list[_RefundDue], report: SweepReport) -> None:
        for item in due:
            result = await self._refunder.refund(
                item.request_id, item.action, item.reason, item.correlation_id
            )
            if result.settled:
                report.refunds_applied += 1
                if item.reason == "dispatch_unconfirmed":
                    report.debits_refunded += 1
            else:
                report.refunds_left += 1

"""Refunding a debit: ask Odoo for a refund the journal holds, and settle the journal.

A refund that does not complete stays in the journal (``pending`` or ``unknown``) and recovery
retries it until Odoo has applied it; Odoo refunds a (request, action) once, so retrying is safe.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from creativeflow.domain.credits import CreditReceipt
from creativeflow.domain.errors import (
    CreditOutcomeUnknown,
    CreditServiceUnavailable,
    CreditsRefused,
)
from creativeflow.domain.states import CreditOperationStatus

from .ports import Clock, CreditLedger, Tracking, TrackingStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RefundResult:
    receipt: CreditReceipt | None
    settled: bool  # True when Odoo's answer is known (applied, or nothing to refund)


class Refunder:
    def __init__(self, db: TrackingStore, credits: CreditLedger, clock: Clock) -> None:
        self._db = db
        self._credits = credits
        self._clock = clock

    async def call_odoo(
        self, request_id: str, action: str, reason: str, correlation_id: str
    ) -> tuple[CreditReceipt | None, str | None, CreditOperationStatus]:
        """Ask Odoo; return (receipt, error text, journal status to record)."""
        try:
            receipt = await self._credits.refund(request_id, action, reason, correlation_id)
        except CreditsRefused as refusal:
            # nothing_to_refund: Odoo holds no debit for this action, so nothing is owed
            return None, refusal.code, CreditOperationStatus.REFUSED
        except CreditOutcomeUnknown as fault:
            return None, type(fault).__name__, CreditOperationStatus.UNKNOWN
        except CreditServiceUnavailable as fault:
            return None, type(fault).__name__, CreditOperationStatus.PENDING
        return receipt, None, CreditOperationStatus.APPLIED

    async def refund(
        self, request_id: str, action: str, reason: str, correlation_id: str
    ) -> RefundResult:
        """Refund an already journalled refund attempt and settle the journal."""
        receipt, error, status = await self.call_odoo(request_id, action, reason, correlation_id)
        await self._db.run(
            lambda repo: self.settle(repo, request_id, action, receipt, error, status)
        )
        if receipt is not None:
            log.info(
                "refund of %s for request %s applied: %s credits",
                action,
                request_id,
                receipt.amount,
                extra={"request_id": request_id, "action": action},
            )
        if status is CreditOperationStatus.PENDING or status is CreditOperationStatus.UNKNOWN:
            log.warning(
                "refund of %s for request %s left for recovery (%s)",
                action,
                request_id,
                error,
                extra={"request_id": request_id, "action": action},
            )
        return RefundResult(receipt=receipt, settled=status not in _UNSETTLED)

    def settle(
        self,
        repo: Tracking,
        request_id: str,
        action: str,
        receipt: CreditReceipt | None,
        error: str | None,
        status: CreditOperationStatus,
    ) -> None:
        record = repo.load_record(request_id)
        refund = record.refund(action) if record is not None else None
        if record is None or refund is None:
            return
        if refund.settled and receipt is None:
            return  # Odoo answered an earlier attempt: a later fault changes nothing
        refund.count_attempt()
        if receipt is not None:
            refund.apply(receipt.amount, receipt.entry_id)
            debit = record.debit(action)
            if debit is not None and debit.status is CreditOperationStatus.APPLIED:
                debit.mark_refunded()
        elif status is CreditOperationStatus.REFUSED:
            assert error is not None
            refund.refuse(error)  # nothing_to_refund: Odoo holds no debit, nothing is owed
        elif status is CreditOperationStatus.UNKNOWN:
            assert error is not None
            refund.lose_reply(error)
        else:
            assert error is not None
            refund.retry_later(error)
        repo.save_record(record, self._clock.now())


_UNSETTLED = (CreditOperationStatus.PENDING, CreditOperationStatus.UNKNOWN)

"""The ports the use cases talk through. Adapters implement them; tests may use their fakes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from creativeflow.domain.credits import (
    CreditReceipt,
    Entitlements,
    GenerationSpec,
    LedgerEntry,
    LedgerPage,
)
from creativeflow.domain.jobs import JobMessage
from creativeflow.domain.notifications import Notification


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

    async def ping(self) -> bool: ...


class JobPublisher(Protocol):
    """Raises ``DispatchUnavailable`` when the broker did not confirm the job."""

    async def publish(self, job: JobMessage) -> None: ...

    async def check(self) -> bool: ...


class Notifier(Protocol):
    """Sends after the commit; a failure is logged and counted, never raised into the flow."""

    def send(self, notification: Notification) -> None: ...


class Clock(Protocol):
    def now(self) -> datetime: ...

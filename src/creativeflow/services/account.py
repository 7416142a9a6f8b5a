"""Small reads: the caller's credit account and its history as Odoo knows them, and whether the
service can serve at all (its database, its job dispatch and Odoo answer, and the results queue
is consumed when results come that way)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from creativeflow.domain.credits import Entitlements, LedgerPage

from .ports import CreditLedger, JobPublisher, ObjectStorage, ResultsIntake, TrackingStore


class CreditAccount:
    """The caller's tier, limits, prices and balance: one Odoo call, nothing charged."""

    def __init__(self, credits: CreditLedger) -> None:
        self._credits = credits

    async def entitlements(self, user_id: str) -> Entitlements:
        return await self._credits.get_entitlements(user_id)

    async def history(self, user_id: str, *, limit: int, offset: int) -> LedgerPage:
        """The caller's own credit movements in Odoo's ledger, newest first."""
        return await self._credits.ledger_for_user(user_id, limit, offset)


@dataclass(frozen=True, slots=True)
class ReadinessReport:
    database: bool
    dispatch: bool
    odoo: bool
    # the assets' storage; None: not configured. Reported, but not a reason to stop taking
    # traffic: copies wait and are retried, and nothing else needs it
    storage: bool | None = None
    # the results queue's consumer; None when results come by callback only. A replica that
    # is not consuming them is not ready: the results would wait for another one
    results: bool | None = None

    @property
    def ready(self) -> bool:
        return self.database and self.dispatch and self.odoo and self.results is not False


class Readiness:
    """Asks each dependency at once; a slow one bounds the answer by its own timeout."""

    def __init__(
        self,
        db: TrackingStore,
        publisher: JobPublisher,
        credits: CreditLedger,
        storage: ObjectStorage | None = None,
        results: ResultsIntake | None = None,
    ) -> None:
        self._db = db
        self._publisher = publisher
        self._credits = credits
        self._storage = storage
        self._results = results

    async def check(self) -> ReadinessReport:
        database, dispatch, odoo, storage = await asyncio.gather(
            self._db.ping(), self._publisher.check(), self._credits.ping(), self._check_storage()
        )
        results = await self._results.check() if self._results is not None else None
        return ReadinessReport(
            database=database, dispatch=dispatch, odoo=odoo, storage=storage, results=results
        )

    async def _check_storage(self) -> bool | None:
        return None if self._storage is None else await self._storage.check()

"""Reconciliation: Odoo's credit ledger against the tracking database, over a time window.

Odoo's ledger is the truth about money; the tracking tables are the truth about work. Every debit
must back work that was dispatched, or have its refund (invariant 1), and no request may be
charged twice for one stage (invariant 2). Each finding names the request and action so an Odoo
admin can look it up in the ledger.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from creativeflow.domain.actions import Action, ActionKind
from creativeflow.domain.credits import LedgerEntry
from creativeflow.domain.model import CreditOperation, Job
from creativeflow.domain.states import CreditOperationKind, CreditOperationStatus, JobStatus

from .ports import CreditLedger, TrackingStore

DISPATCHED = frozenset({JobStatus.PUBLISHED, JobStatus.SUCCEEDED, JobStatus.FAILED})
PAGE = 1000


class MismatchKind(enum.StrEnum):
    DEBIT_WITHOUT_WORK_OR_REFUND = "debit_without_work_or_refund"
    REFUND_WITHOUT_DEBIT = "refund_without_debit"
    DOUBLE_DEBIT = "double_debit"
    AMOUNT_MISMATCH = "amount_mismatch"
    UNKNOWN_REQUEST = "unknown_request"
    JOURNAL_WITHOUT_LEDGER = "journal_without_ledger"


@dataclass(frozen=True, slots=True)
class Mismatch:
    kind: MismatchKind
    request_id: str
    action: str
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {
            "kind": self.kind.value,
            "request_id": self.request_id,
            "action": self.action,
            "detail": self.detail,
        }


@dataclass
class ReconciliationReport:
    since: datetime
    until: datetime
    ledger_entries: int = 0
    requests: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.mismatches

    def to_dict(self) -> dict[str, object]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "ledger_entries": self.ledger_entries,
            "requests": self.requests,
            "mismatches": [m.to_dict() for m in self.mismatches],
        }


@dataclass
class _Pair:
    """Everything both sides know about one (request, action)."""

    debits: list[LedgerEntry] = field(default_factory=list)
    refunds: list[LedgerEntry] = field(default_factory=list)
    journal: dict[CreditOperationKind, CreditOperation] = field(default_factory=dict)
    jobs: list[Job] = field(default_factory=list)


class Reconciler:
    def __init__(self, db: TrackingStore, credits: CreditLedger) -> None:
        self._db = db
        self._credits = credits

    async def reconcile(self, since: datetime, until: datetime) -> ReconciliationReport:
        report = ReconciliationReport(since=since, until=until)
        entries = await self._ledger(since, until)
        report.ledger_entries = len(entries)
        ledger_requests = {e.request_id for e in entries if e.request_id}
        tracked_in_window = await self._db.run(
            lambda repo: repo.requests_created_between(since, until)
        )
        request_ids = sorted(ledger_requests | set(tracked_in_window))
        report.requests = len(request_ids)
        # entries of these requests outside the window (a refund written later) count too
        if request_ids:
            entries = await self._entries_of(request_ids)
        known, operations, jobs = await self._db.run(
            lambda repo: (
                {r for r in request_ids if repo.get_request(r) is not None},
                repo.operations_for_requests(request_ids),
                [job for r in request_ids for job in repo.jobs_for_request(r)],
            )
        )
        pairs = _pairs(entries, operations, jobs)
        for (request_id, action), pair in sorted(pairs.items()):
            report.mismatches.extend(_check_pair(request_id, action, pair, request_id in known))
        report.mismatches.extend(_double_charges(pairs))
        return report

    async def _ledger(self, since: datetime, until: datetime) -> list[LedgerEntry]:
        entries: list[LedgerEntry] = []
        offset = 0
        while True:
            page = await self._credits.ledger_window(since, until, limit=PAGE, offset=offset)
            entries.extend(page.entries)
            if not page.has_more:
                return entries
            offset += PAGE

    async def _entries_of(self, request_ids: list[str]) -> list[LedgerEntry]:
        entries: list[LedgerEntry] = []
        for start in range(0, len(request_ids), 500):
            entries.extend(await self._credits.ledger_by_requests(request_ids[start : start + 500]))
        return entries


def _pairs(
    entries: Iterable[LedgerEntry], operations: Iterable[CreditOperation], jobs: Iterable[Job]
) -> dict[tuple[str, str], _Pair]:
    pairs: dict[tuple[str, str], _Pair] = defaultdict(_Pair)
    for entry in entries:
        if not entry.request_id or not entry.action:
            continue  # adjustments belong to no request
        pair = pairs[(entry.request_id, entry.action)]
        if entry.operation == "debit":
            pair.debits.append(entry)
        elif entry.operation == "refund":
            pair.refunds.append(entry)
    for operation in operations:
        if operation.status is CreditOperationStatus.REFUSED:
            continue  # nothing moved; Odoo holds nothing for it
        pairs[(operation.request_id, operation.action)].journal[operation.kind] = operation
    for job in jobs:
        key = (job.request_id, job.action)
        if key in pairs:
            pairs[key].jobs.append(job)
    return pairs


def _check_pair(request_id: str, action: str, pair: _Pair, known: bool) -> list[Mismatch]:
    found: list[Mismatch] = []

    def add(kind: MismatchKind, detail: str) -> None:
        found.append(Mismatch(kind, request_id, action, detail))

    if pair.debits and not known:
        add(
            MismatchKind.UNKNOWN_REQUEST,
            "Odoo holds a debit for a request the service never tracked",
        )
    if len(pair.debits) > 1:
        add(MismatchKind.DOUBLE_DEBIT, f"{len(pair.debits)} debits for one action")
    if pair.refunds and not pair.debits:
        add(MismatchKind.REFUND_WITHOUT_DEBIT, "Odoo holds a refund with no debit")
    if pair.debits and not pair.refunds and not any(j.status in DISPATCHED for j in pair.jobs):
        add(
            MismatchKind.DEBIT_WITHOUT_WORK_OR_REFUND,
            f"debit of {pair.debits[0].amount} credits with no dispatched job and no refund",
        )
    for entries, kind in (
        (pair.debits, CreditOperationKind.DEBIT),
        (pair.refunds, CreditOperationKind.REFUND),
    ):
        journal = pair.journal.get(kind)
        settled = journal is not None and journal.status in (
            CreditOperationStatus.APPLIED,
            CreditOperationStatus.REFUNDED,
        )
        if settled and not entries:
            add(
                MismatchKind.JOURNAL_WITHOUT_LEDGER,
                f"the journal says the {kind} was applied; Odoo holds none",
            )
        if settled and entries and journal is not None and journal.amount != entries[0].amount:
            add(
                MismatchKind.AMOUNT_MISMATCH,
                f"{kind}: journal {journal.amount}, Odoo {entries[0].amount}",
            )
    if pair.debits and pair.refunds and pair.debits[0].amount != pair.refunds[0].amount:
        add(
            MismatchKind.AMOUNT_MISMATCH,
            f"refund of {pair.refunds[0].amount} for a debit of {pair.debits[0].amount}",
        )
    return found


def _double_charges(pairs: dict[tuple[str, str], _Pair]) -> list[Mismatch]:
    """One request pays for its first samples and its final asset once each (regenerations are
    paid per round): more than one unrefunded debit of those stages is a double charge."""
    unrefunded: dict[tuple[str, str], list[str]] = defaultdict(list)
    for (request_id, action), pair in pairs.items():
        if pair.debits and not pair.refunds:
            # regenerations are paid per round; samples and the final asset once each
            if not Action.is_valid(action):
                continue
            kind = Action.parse(action).kind
            if kind is not ActionKind.REGENERATION:
                unrefunded[(request_id, kind.value)].append(action)
    return [
        Mismatch(
            MismatchKind.DOUBLE_DEBIT,
            request_id,
            stage,
            f"unrefunded debits of one stage: {', '.join(sorted(actions))}",
        )
        for (request_id, stage), actions in sorted(unrefunded.items())
        if len(actions) > 1
    ]

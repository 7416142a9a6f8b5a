"""``FakeCredits``: an in-memory twin of ``AsyncOdooCredits`` for fast unit tests of the use cases.

It is no second copy of the contract's rules: it runs the Odoo emulator's own ledger
(``odoo_emulator/ledger.py``, whose tier checks and prices are ``odoo_emulator/rules.py``) with
the arguments the real client sends, and reads its answers with the real adapter's reply readers
(``adapters/odoo/replies.py``), so a refusal is the same ``OdooRejected`` with the same code and
figures. It only adds what a unit test needs: no network, no thread, and ``fail_next``, which
injects a fault into the next call of a method, applied first or not, so a test can play
"unavailable" and "applied, then the reply was lost".
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from creativeflow.adapters.odoo import replies
from creativeflow.adapters.odoo.client import LEDGER_BY_REQUESTS_LIMIT, odoo_datetime
from creativeflow.adapters.odoo.errors import OdooError
from creativeflow.domain.credits import (
    CreditReceipt,
    Entitlements,
    GenerationSpec,
    LedgerEntry,
    LedgerPage,
    Quote,
)
from creativeflow.domain.generated_assets import GeneratedAsset, RecordedAsset
from creativeflow_devstack.odoo_emulator.ledger import CreditLedger
from creativeflow_devstack.odoo_emulator.rules import Tier
from creativeflow_devstack.odoo_emulator.seed import load_seed

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Injected:
    error: Exception
    apply_first: bool


class FakeCredits:
    """Implements ``services.ports.CreditLedger`` in memory. Single event loop, no threads.

    ``tiers`` default to the emulator's seed (free, pro, studio)."""

    def __init__(
        self,
        *,
        tiers: Iterable[Tier] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._ledger = CreditLedger(
            load_seed().tiers if tiers is None else tiers, clock or (lambda: datetime.now(UTC))
        )
        self._injected: dict[str, deque[_Injected]] = {}
        self.calls: list[str] = []
        """The names of the methods called, in order (``"debit"``, ``"refund"``...)."""

    # -- test set-up and inspection -----------------------------------------------------------

    def add_account(self, user_id: str, *, tier: str = "pro", balance: int = 0) -> None:
        """Open an account; an unknown tier or a negative balance is a ``ValueError``."""
        self._ledger.add_account(user_id, tier, balance)

    def balance(self, user_id: str) -> int:
        return self._ledger.balance(user_id)

    def ledger(self) -> tuple[LedgerEntry, ...]:
        return replies.ledger_entries({"ok": True, "code": "ok", "entries": self._ledger.entries()})

    def assets(self) -> list[dict[str, object]]:
        """Every recorded asset, in the shape Odoo's ``record_generated_asset`` answers."""
        return self._ledger.assets()

    def fail_next(self, method: str, error: Exception, *, apply_first: bool = False) -> None:
        """The next call of ``method`` raises ``error``; after applying it if ``apply_first``.

        ``fail_next("debit", OdooOutcomeUnknown("lost"), apply_first=True)`` is "applied, then
        the reply was lost"; ``fail_next("debit", OdooUnavailable("down"))`` charges nothing.
        """
        self._injected.setdefault(method, deque()).append(_Injected(error, apply_first))

    # -- the CreditLedger port, with the client's arguments and the adapter's readers ----------

    async def get_entitlements(self, user_id: str) -> Entitlements:
        return self._call(
            "get_entitlements",
            lambda: replies.entitlements(self._ledger.get_entitlements(user_id), user_id),
        )

    async def debit(
        self,
        user_id: str,
        request_id: str,
        action: str,
        spec: GenerationSpec,
        correlation_id: str,
    ) -> CreditReceipt:
        def apply() -> CreditReceipt:
            answer = self._ledger.debit(
                user_id, request_id, action, spec.as_odoo_spec(), correlation_id or False
            )
            return replies.receipt("debit", answer, "debited", request_id, action, user_id)

        return self._call("debit", apply)

    async def refund(
        self, request_id: str, action: str, reason: str, correlation_id: str
    ) -> CreditReceipt:
        def apply() -> CreditReceipt:
            answer = self._ledger.refund(request_id, action, reason, correlation_id or False)
            return replies.receipt("refund", answer, "refunded", request_id, action)

        return self._call("refund", apply)

    async def ledger_by_requests(self, request_ids: Sequence[str]) -> tuple[LedgerEntry, ...]:
        def apply() -> tuple[LedgerEntry, ...]:
            ids = list(dict.fromkeys(request_ids))
            entries: list[LedgerEntry] = []
            for start in range(0, len(ids), LEDGER_BY_REQUESTS_LIMIT):
                answer = self._ledger.ledger_by_requests(
                    ids[start : start + LEDGER_BY_REQUESTS_LIMIT]
                )
                entries.extend(replies.ledger_entries(answer))
            return tuple(sorted(entries, key=lambda entry: entry.id))

        return self._call("ledger_by_requests", apply)

    async def ledger_window(
        self, since: datetime, until: datetime, limit: int = 1000, offset: int = 0
    ) -> LedgerPage:
        return self._call(
            "ledger_window",
            lambda: replies.ledger_page(
                self._ledger.ledger_window(
                    odoo_datetime(since), odoo_datetime(until), limit, offset
                )
            ),
        )

    async def quote(self, user_id: str, spec: GenerationSpec) -> Quote:
        return self._call(
            "quote",
            lambda: replies.quote(self._ledger.quote(user_id, spec.as_odoo_spec()), user_id),
        )

    async def ledger_for_user(self, user_id: str, limit: int = 20, offset: int = 0) -> LedgerPage:
        return self._call(
            "ledger_for_user",
            lambda: replies.user_ledger_page(self._ledger.ledger_for_user(user_id, limit, offset)),
        )

    async def record_generated_asset(self, asset: GeneratedAsset) -> RecordedAsset:
        return self._call(
            "record_generated_asset",
            lambda: replies.recorded_asset(
                self._ledger.record_generated_asset(asset.as_odoo_asset()), asset
            ),
        )

    async def ping(self) -> bool:
        return True

    def close(self) -> None:
        """Nothing to release."""

    async def aclose(self) -> None:
        """Nothing to release."""

    def _call(self, method: str, apply: Callable[[], T]) -> T:
        """Record the call, raise an injected fault if one is queued for ``method`` (after
        applying the call when asked to), else apply it."""
        self.calls.append(method)
        queue = self._injected.get(method)
        if not queue:
            return apply()
        injected = queue.popleft()
        if injected.apply_first:
            # A refusal applies nothing; the injected fault hides the answer either way.
            with contextlib.suppress(OdooError):
                apply()
        raise injected.error

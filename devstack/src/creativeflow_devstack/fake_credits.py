"""``FakeCredits``: an in-memory twin of ``AsyncOdooCredits`` for fast unit tests of the use cases.

It keeps the contract's rules (``odoo_contracts/README.md``): argument checks, the tier check in
its order (the cap on unfinished requests last, for ``samples`` when the spec carries
``requests_in_flight``), pricing, idempotent debit (a replay whatever the tier or balance is now),
refund once, the ledger lookups, and raises the adapter's own errors (``OdooRejected`` with the
contract's codes and figures). ``fail_next`` injects a fault into the next call of a method,
applied first or not, so a test can play "unavailable" and "applied, then the reply was lost".
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from creativeflow.adapters.odoo.client import odoo_datetime
from creativeflow.adapters.odoo.errors import OdooError, OdooRejected
from creativeflow.domain.actions import Action
from creativeflow.domain.credits import (
    CreditReceipt,
    Entitlements,
    GenerationSpec,
    LedgerEntry,
    LedgerPage,
    Prices,
    TierLimits,
)


@dataclass(frozen=True, slots=True)
class FakeTier:
    """A subscription tier: its limits and prices, with the README's meaning."""

    code: str
    name: str
    limits: TierLimits
    prices: Prices


def default_tiers() -> dict[str, FakeTier]:
    """The tiers of the emulator's default seed (free, pro, studio)."""
    return {
        "free": FakeTier(
            "free",
            "Free",
            TierLimits(("png", "jpeg"), 1024, 1024, 2, False, 2),
            Prices(sample=1, final=5, regeneration_sample=1),
        ),
        "pro": FakeTier(
            "pro",
            "Pro",
            TierLimits(("png", "jpeg", "webp"), 4096, 4096, 8, True, 10),
            Prices(sample=2, final=10, regeneration_sample=1),
        ),
        "studio": FakeTier(
            "studio",
            "Studio",
            TierLimits(("png", "jpeg", "webp", "tiff"), 8192, 8192, 16, True, 50),
            Prices(sample=2, final=8, regeneration_sample=1),
        ),
    }


@dataclass(slots=True)
class _Account:
    user_id: str
    tier: str
    balance: int


@dataclass(frozen=True, slots=True)
class _Injected:
    error: Exception
    apply_first: bool


class FakeCredits:
    """Implements ``services.ports.CreditLedger`` in memory. Single event loop, no threads."""

    def __init__(
        self,
        *,
        tiers: dict[str, FakeTier] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._tiers = dict(tiers) if tiers is not None else default_tiers()
        self._clock = clock or (lambda: datetime.now(UTC))
        self._accounts: dict[str, _Account] = {}
        self._entries: list[tuple[LedgerEntry, datetime]] = []
        self._injected: dict[str, deque[_Injected]] = {}
        self.calls: list[str] = []
        """The names of the methods called, in order (``"debit"``, ``"refund"``...)."""

    # -- test set-up and inspection -----------------------------------------------------------

    def add_account(self, user_id: str, *, tier: str = "pro", balance: int = 0) -> None:
        if tier not in self._tiers:
            raise ValueError(f"unknown tier {tier!r}")
        if balance < 0:
            raise ValueError("balance must not be negative")
        self._accounts[user_id] = _Account(user_id, tier, balance)

    def balance(self, user_id: str) -> int:
        return self._accounts[user_id].balance

    def ledger(self) -> tuple[LedgerEntry, ...]:
        return tuple(entry for entry, _ in self._entries)

    def fail_next(self, method: str, error: Exception, *, apply_first: bool = False) -> None:
        """The next call of ``method`` raises ``error``; after applying it if ``apply_first``.

        ``fail_next("debit", OdooOutcomeUnknown("lost"), apply_first=True)`` is "applied, then
        the reply was lost"; ``fail_next("debit", OdooUnavailable("down"))`` charges nothing.
        """
        self._injected.setdefault(method, deque()).append(_Injected(error, apply_first))

    # -- the CreditLedger port ----------------------------------------------------------------

    async def get_entitlements(self, user_id: str) -> Entitlements:
        self._called("get_entitlements", apply=None)
        account = self._account(user_id)
        tier = self._tiers[account.tier]
        return Entitlements(
            user_id=user_id,
            tier_code=tier.code,
            tier_name=tier.name,
            limits=tier.limits,
            prices=tier.prices,
            balance=account.balance,
        )

    async def debit(
        self,
        user_id: str,
        request_id: str,
        action: str,
        spec: GenerationSpec,
        correlation_id: str,
    ) -> CreditReceipt:
        return self._with_injection(
            "debit", lambda: self._debit(user_id, request_id, action, spec, correlation_id)
        )

    async def refund(
        self, request_id: str, action: str, reason: str, correlation_id: str
    ) -> CreditReceipt:
        return self._with_injection(
            "refund", lambda: self._refund(request_id, action, reason, correlation_id)
        )

    async def ledger_by_requests(self, request_ids: Sequence[str]) -> tuple[LedgerEntry, ...]:
        self._called("ledger_by_requests", apply=None)
        wanted = set(request_ids)
        return tuple(entry for entry, _ in self._entries if entry.request_id in wanted)

    async def ledger_window(
        self, since: datetime, until: datetime, limit: int = 1000, offset: int = 0
    ) -> LedgerPage:
        self._called("ledger_window", apply=None)
        if limit < 1 or offset < 0:
            raise OdooRejected("invalid_request", detail="limit >= 1 and offset >= 0")
        start, end = odoo_datetime(since), odoo_datetime(until)
        inside = [e for e, at in self._entries if start <= odoo_datetime(at) < end]
        page = inside[offset : offset + limit]
        return LedgerPage(entries=tuple(page), has_more=offset + limit < len(inside))

    async def ping(self) -> bool:
        return True

    def close(self) -> None:
        """Nothing to release."""

    async def aclose(self) -> None:
        """Nothing to release."""

    # -- the rules ----------------------------------------------------------------------------

    def _debit(
        self, user_id: str, request_id: str, action: str, spec: GenerationSpec, correlation_id: str
    ) -> CreditReceipt:
        _check_request(request_id, action)
        _check_spec(spec)
        account = self._account(user_id)
        earlier = self._find(request_id, action, "debit")
        if earlier is not None:
            if earlier.user_id != user_id:
                raise OdooRejected(
                    "request_conflict",
                    detail="this request and action were debited to another account",
                )
            return _receipt(earlier, replay=True)
        tier = self._tiers[account.tier]
        refusal = _tier_refusal(tier, action, spec)
        if refusal is not None:
            reason, detail, figures = refusal
            raise OdooRejected(
                "tier_forbids", reason=reason, tier=tier.code, detail=detail, **figures
            )
        amount = _price(tier, action, spec)
        if amount > account.balance:
            raise OdooRejected("insufficient_credits", required=amount, balance=account.balance)
        account.balance -= amount
        entry = self._write(account, request_id, action, "debit", amount, None, correlation_id)
        return _receipt(entry, replay=False)

    def _refund(
        self, request_id: str, action: str, reason: str, correlation_id: str
    ) -> CreditReceipt:
        _check_request(request_id, action)
        debit = self._find(request_id, action, "debit")
        if debit is None:
            raise OdooRejected("nothing_to_refund")
        earlier = self._find(request_id, action, "refund")
        if earlier is not None:
            return _receipt(earlier, replay=True)
        account = self._accounts[debit.user_id]
        account.balance += debit.amount
        entry = self._write(
            account, request_id, action, "refund", debit.amount, reason or None, correlation_id
        )
        return _receipt(entry, replay=False)

    def _write(
        self,
        account: _Account,
        request_id: str,
        action: str,
        operation: str,
        amount: int,
        reason: str | None,
        correlation_id: str,
    ) -> LedgerEntry:
        now = self._clock()
        entry = LedgerEntry(
            id=len(self._entries) + 1,
            user_id=account.user_id,
            request_id=request_id,
            action=action,
            operation=operation,
            amount=amount,
            balance_after=account.balance,
            reason=reason,
            correlation_id=correlation_id or None,
            created_at=odoo_datetime(now),
        )
        self._entries.append((entry, now))
        return entry

    def _find(self, request_id: str, action: str, operation: str) -> LedgerEntry | None:
        for entry, _ in self._entries:
            if (entry.request_id, entry.action, entry.operation) == (request_id, action, operation):
                return entry
        return None

    def _account(self, user_id: str) -> _Account:
        account = self._accounts.get(user_id)
        if account is None:
            raise OdooRejected("unknown_account")
        return account

    def _with_injection(self, method: str, apply: Callable[[], CreditReceipt]) -> CreditReceipt:
        self._called(method, apply=apply)
        return apply()

    def _called(self, method: str, *, apply: Callable[[], CreditReceipt] | None) -> None:
        """Record the call and raise an injected fault, if one is queued for ``method``."""
        self.calls.append(method)
        queue = self._injected.get(method)
        if not queue:
            return
        injected = queue.popleft()
        if injected.apply_first and apply is not None:
            # A refusal applies nothing; the injected fault hides the answer either way.
            with contextlib.suppress(OdooError):
                apply()
        raise injected.error


def _check_request(request_id: str, action: str) -> None:
    if not isinstance(request_id, str) or not request_id:
        raise OdooRejected("invalid_request", detail="request_id must be a non-empty string")
    if not Action.is_valid(action):
        raise OdooRejected(
            "invalid_request",
            detail="action must be 'samples', 'final', 'final-<n>' (n >= 2) or 'regeneration-<n>'",
        )


def _check_spec(spec: GenerationSpec) -> None:
    if spec.samples < 1:
        raise OdooRejected("invalid_request", detail="spec.samples must be at least 1")
    if spec.width < 1 or spec.height < 1:
        raise OdooRejected(
            "invalid_request", detail="spec.width and spec.height must be at least 1"
        )
    in_flight = spec.requests_in_flight
    if in_flight is not None and (
        isinstance(in_flight, bool) or not isinstance(in_flight, int) or in_flight < 0
    ):
        raise OdooRejected(
            "invalid_request", detail="spec.requests_in_flight must be an integer >= 0"
        )


def _is_final(action: str) -> bool:
    return Action.parse(action).is_final


_TierRefusal = tuple[str, str, dict[str, int]]


def _tier_refusal(tier: FakeTier, action: str, spec: GenerationSpec) -> _TierRefusal | None:
    """(reason, detail, extra figures) of the first tier rule the spec breaks, in the README's
    order."""
    limits = tier.limits
    if spec.format not in limits.formats:
        return "format_not_allowed", f"format {spec.format!r} is not allowed", {}
    if spec.width > limits.max_width or spec.height > limits.max_height:
        return "resolution_not_allowed", f"{spec.width}x{spec.height} is too large", {}
    if not _is_final(action) and spec.samples > limits.max_samples_per_request:
        return "too_many_samples", f"{spec.samples} samples is too many", {}
    if spec.advanced_model and not limits.advanced_models:
        return "advanced_model_not_allowed", f"tier {tier.code!r} has no advanced models", {}
    in_flight = spec.requests_in_flight
    if action == "samples" and in_flight is not None and in_flight >= limits.max_requests_in_flight:
        return (
            "too_many_requests_in_flight",
            f"{in_flight} unfinished requests reach the cap of {limits.max_requests_in_flight}",
            {
                "requests_in_flight": in_flight,
                "max_requests_in_flight": limits.max_requests_in_flight,
            },
        )
    return None


def _price(tier: FakeTier, action: str, spec: GenerationSpec) -> int:
    if action == "samples":
        return tier.prices.sample * spec.samples
    if _is_final(action):
        return tier.prices.final
    return tier.prices.regeneration_sample * spec.samples


def _receipt(entry: LedgerEntry, *, replay: bool) -> CreditReceipt:
    return CreditReceipt(
        entry_id=entry.id,
        user_id=entry.user_id,
        request_id=entry.request_id or "",
        action=entry.action or "",
        amount=entry.amount,
        balance_after=entry.balance_after,
        replay=replay,
    )

"""Credit accounts and the immutable ledger: the state the addon keeps in PostgreSQL.

Every public method answers with the contract's result dict (``ok``, ``code`` and the documented
keys, never ``None``). One lock serialises every method, which stands in for the addon's
``SELECT ... FOR UPDATE`` on the account row and its unique (request id, action, operation)
constraint: twenty concurrent debits can neither overdraw an account nor debit one action twice.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import rules
from .rules import Absent, AssetRecord, InvalidRequest, Tier

Result = dict[str, Any]
Clock = Callable[[], datetime]

OPERATION_DEBIT = "debit"
OPERATION_REFUND = "refund"


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One ``creativeflow.credit.ledger`` record; never changed once written."""

    id: int
    user_id: str
    request_id: str
    action: str
    operation: str
    amount: int
    balance_after: int
    reason: str | Absent
    correlation_id: str | Absent
    created: datetime  # naive UTC, to the second, as Odoo stores ``create_date``
    model: str | Absent = False  # the model the debit granted (a refund repeats its debit's)

    def as_contract(self) -> Result:
        return {
            "id": self.id,
            "user_id": self.user_id,
            "request_id": self.request_id,
            "action": self.action,
            "operation": self.operation,
            "amount": self.amount,
            "balance_after": self.balance_after,
            "reason": self.reason,
            "correlation_id": self.correlation_id,
            "model": self.model,
            "created_at": rules.format_timestamp(self.created),
        }

    def as_receipt(self, code: str, *, replay: bool) -> Result:
        """The success shape of ``debit`` and ``refund``, also replayed verbatim."""
        return {
            "ok": True,
            "code": code,
            "replay": replay,
            "entry_id": self.id,
            "user_id": self.user_id,
            "request_id": self.request_id,
            "action": self.action,
            "amount": self.amount,
            "balance_after": self.balance_after,
            "model": self.model,
        }


@dataclass(frozen=True, slots=True)
class StoredAsset:
    """One ``creativeflow.generated.asset`` record; never changed once written."""

    id: int
    record: AssetRecord
    ledger_entry_ids: tuple[int, ...]
    created: datetime  # naive UTC, to the second

    def as_contract(self, *, created: bool) -> Result:
        """The success shape of ``record_generated_asset``, ``created`` false on a replay."""
        record = self.record
        return {
            "ok": True,
            "code": "recorded",
            "created": created,
            "asset_id": self.id,
            "request_id": record.request_id,
            "user_id": record.platform_user_id,
            "storage_key": record.storage_key,
            "format": record.format,
            "width": record.width,
            "height": record.height,
            "checksum_sha256": record.checksum_sha256,
            "byte_size": record.byte_size,
            "debit_actions": sorted(record.debit_actions),
            "ledger_entry_ids": list(self.ledger_entry_ids),
            "recorded_at": rules.format_timestamp(self.created),
        }

    def as_state(self) -> Result:
        return {
            "id": self.id,
            **{name: getattr(self.record, name) for name in self.record.__slots__},
            "debit_actions": list(self.record.debit_actions),
            "ledger_entry_ids": list(self.ledger_entry_ids),
            "created": self.created.isoformat(),
        }

    @classmethod
    def from_state(cls, state: Result) -> StoredAsset:
        values = dict(state)
        asset_id = values.pop("id")
        entry_ids = tuple(values.pop("ledger_entry_ids"))
        created = datetime.fromisoformat(values.pop("created"))
        values["debit_actions"] = tuple(values["debit_actions"])
        return cls(asset_id, AssetRecord(**values), entry_ids, created)


@dataclass(slots=True)
class Account:
    """A ``creativeflow.credit.account``: its balance moves only with a ledger entry."""

    platform_user_id: str
    tier_code: str
    balance: int

    def as_dict(self) -> Result:
        return {"user_id": self.platform_user_id, "tier": self.tier_code, "balance": self.balance}


class AccountExists(ValueError):
    """An account for this platform user id is already open (the field is unique)."""


def vars_of(record: Account | LedgerEntry) -> Result:
    return {name: getattr(record, name) for name in record.__slots__}


def refusal(code: str, **extra: Any) -> Result:
    return {"ok": False, "code": code, **extra}


class CreditLedger:
    """Tiers, accounts and ledger entries in memory, behind one lock."""

    def __init__(self, tiers: Iterable[Tier], clock: Clock = utc_now) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._tiers = {tier.code: tier for tier in tiers}
        self._accounts: dict[str, Account] = {}
        self._entries: list[LedgerEntry] = []
        self._debits: dict[tuple[str, str], LedgerEntry] = {}
        self._refunds: dict[tuple[str, str], LedgerEntry] = {}
        self._assets: dict[str, StoredAsset] = {}

    # -- administration (the Python and HTTP control faces, not RPC) ---------------------------

    def add_account(self, platform_user_id: str, tier_code: str, balance: int = 0) -> None:
        """Open an account, as a manager would in Odoo; its opening balance writes no entry."""
        if not isinstance(platform_user_id, str) or not platform_user_id:
            raise ValueError("platform_user_id must be a non-empty string")
        if not rules.is_integer(balance) or balance < 0:
            raise ValueError("balance must be an integer >= 0")
        with self._lock:
            if tier_code not in self._tiers:
                raise ValueError(f"unknown tier {tier_code!r}")
            if platform_user_id in self._accounts:
                raise AccountExists(f"account {platform_user_id!r} already exists")
            self._accounts[platform_user_id] = Account(platform_user_id, tier_code, balance)

    def balance(self, platform_user_id: str) -> int:
        with self._lock:
            return self._accounts[platform_user_id].balance

    def set_tier(self, tier: Tier) -> None:
        """Add a tier or replace the one with its code, as a manager edits a tier in Odoo (its
        models, say): the accounts on it follow at once."""
        if tier.default_model and tier.default_model not in tier.models:
            raise ValueError(f"tier {tier.code!r}: the default model is not among its models")
        with self._lock:
            self._tiers[tier.code] = tier

    def tier(self, code: str) -> Tier:
        with self._lock:
            return self._tiers[code]

    def accounts(self) -> list[Result]:
        with self._lock:
            return [account.as_dict() for account in self._accounts.values()]

    def entries(self) -> list[Result]:
        with self._lock:
            return [entry.as_contract() for entry in self._entries]

    def assets(self) -> list[Result]:
        """Every recorded asset, in the shape ``record_generated_asset`` answers."""
        with self._lock:
            return [asset.as_contract(created=False) for asset in self._assets.values()]

    # -- keeping the state between runs of the local stack ---------------------------------------

    def snapshot(self) -> Result:
        """Accounts and entries, as JSON-ready data :meth:`restore` takes back."""
        with self._lock:
            return {
                "accounts": [vars_of(a) for a in self._accounts.values()],
                "entries": [
                    {**vars_of(e), "created": e.created.isoformat()} for e in self._entries
                ],
                "assets": [asset.as_state() for asset in self._assets.values()],
            }

    def restore(self, state: Result) -> None:
        """Replace every account, entry and asset with a :meth:`snapshot`'s (a state written
        before assets were recorded has none)."""
        accounts = {a["platform_user_id"]: Account(**a) for a in state["accounts"]}
        entries = [
            LedgerEntry(**{**e, "created": datetime.fromisoformat(e["created"])})
            for e in state["entries"]
        ]
        assets = [StoredAsset.from_state(a) for a in state.get("assets", [])]
        with self._lock:
            self._accounts = accounts
            self._entries = entries
            self._debits = {
                (e.request_id, e.action): e for e in entries if e.operation == OPERATION_DEBIT
            }
            self._refunds = {
                (e.request_id, e.action): e for e in entries if e.operation == OPERATION_REFUND
            }
            self._assets = {a.record.request_id: a for a in assets}

    # -- the public RPC methods of creativeflow.credit.service ---------------------------------

    def get_entitlements(self, platform_user_id: object) -> Result:
        if not rules.is_text(platform_user_id):
            return refusal("invalid_request", detail="platform_user_id must be a non-empty string")
        with self._lock:
            account = self._accounts.get(str(platform_user_id))
            if account is None:
                return refusal("unknown_account")
            return _entitlements(account, self._tiers[account.tier_code])

    def debit(
        self,
        platform_user_id: object,
        request_id: object,
        action: object,
        spec: object,
        correlation_id: object = False,
    ) -> Result:
        """Check, price and write a debit in one step, or replay the first one."""
        try:
            user_id = rules.require_text(platform_user_id, "platform_user_id")
            request = rules.require_text(request_id, "request_id")
            checked_action = rules.check_action(action)
            checked_spec = rules.parse_spec(spec)
            correlation = rules.optional_text(correlation_id, "correlation_id")
        except InvalidRequest as exc:
            return refusal("invalid_request", detail=exc.detail)
        with self._lock:
            return self._debit_locked(user_id, request, checked_action, checked_spec, correlation)

    def refund(
        self,
        request_id: object,
        action: object,
        reason: object,
        correlation_id: object = False,
    ) -> Result:
        """Give back exactly what the debit of (request id, action) took, once."""
        try:
            request = rules.require_text(request_id, "request_id")
            checked_action = rules.check_action(action)
            checked_reason = rules.reason_text(reason)
            correlation = rules.optional_text(correlation_id, "correlation_id")
        except InvalidRequest as exc:
            return refusal("invalid_request", detail=exc.detail)
        with self._lock:
            return self._refund_locked(request, checked_action, checked_reason, correlation)

    def ledger_by_requests(self, request_ids: object) -> Result:
        try:
            wanted = set(rules.check_request_ids(request_ids))
        except InvalidRequest as exc:
            return refusal("invalid_request", detail=exc.detail)
        with self._lock:
            found = [e.as_contract() for e in self._entries if e.request_id in wanted]
        return {"ok": True, "code": "ok", "entries": found}

    def quote(self, platform_user_id: object, spec: object) -> Result:
        """What a new request with ``spec`` would cost, and whether the tier allows it; writes
        nothing."""
        try:
            user_id = rules.require_text(platform_user_id, "platform_user_id")
            checked_spec = rules.parse_spec(spec)
        except InvalidRequest as exc:
            return refusal("invalid_request", detail=exc.detail)
        with self._lock:
            account = self._accounts.get(user_id)
            if account is None:
                return refusal("unknown_account")
            tier = self._tiers[account.tier_code]
            answer = rules.quote(tier, checked_spec, account.balance)
        return {"ok": True, "code": "quoted", "user_id": user_id, **answer}

    def ledger_for_user(
        self,
        platform_user_id: object,
        limit: object = rules.DEFAULT_HISTORY_LIMIT,
        offset: object = 0,
    ) -> Result:
        """The account's own entries, newest first, a page at a time."""
        try:
            user_id = rules.require_text(platform_user_id, "platform_user_id")
            page_size, skip = rules.check_page(limit, offset, rules.MAX_HISTORY_LIMIT)
        except InvalidRequest as exc:
            return refusal("invalid_request", detail=exc.detail)
        with self._lock:
            if user_id not in self._accounts:
                return refusal("unknown_account")
            own = [e for e in reversed(self._entries) if e.user_id == user_id]
        page = own[skip : skip + page_size]
        return {
            "ok": True,
            "code": "ok",
            "entries": [entry.as_contract() for entry in page],
            "has_more": len(own) > skip + page_size,
        }

    def ledger_window(
        self, since: object, until: object, limit: object = 1000, offset: object = 0
    ) -> Result:
        """Entries with ``since <= create_date < until``, a page at a time, for reconciliation."""
        try:
            start = rules.parse_timestamp(since, "since")
            end = rules.parse_timestamp(until, "until")
            if start > end:
                raise InvalidRequest("since must not be after until")
            page_size, skip = rules.check_window_page(limit, offset)
        except InvalidRequest as exc:
            return refusal("invalid_request", detail=exc.detail)
        with self._lock:
            matching = [e for e in self._entries if start <= e.created < end]
        page = matching[skip : skip + page_size]
        return {
            "ok": True,
            "code": "ok",
            "entries": [entry.as_contract() for entry in page],
            "has_more": len(matching) > skip + page_size,
        }

    def record_generated_asset(self, asset: object) -> Result:
        """Record a request's final asset once, linked to the debits that paid for it; the same
        values again are a replay (``created`` false), other values an ``asset_conflict``."""
        try:
            record = rules.parse_asset(asset)
        except InvalidRequest as exc:
            return refusal("invalid_request", detail=exc.detail)
        with self._lock:
            return self._record_asset_locked(record)

    # -- helpers, called with the lock held ----------------------------------------------------

    def _record_asset_locked(self, record: AssetRecord) -> Result:
        if record.platform_user_id not in self._accounts:
            return refusal("unknown_account")
        earlier = self._assets.get(record.request_id)
        if earlier is not None:
            differences = earlier.record.differences(record)
            if differences:
                return refusal(
                    "asset_conflict",
                    detail=f"request {record.request_id!r} already has an asset with other "
                    + ", ".join(differences),
                    differences=differences,
                )
            return earlier.as_contract(created=False)
        debits = {
            action: self._debits.get((record.request_id, action)) for action in record.debit_actions
        }
        missing = sorted(action for action, debit in debits.items() if debit is None)
        if missing:
            return refusal(
                "unknown_debit",
                detail=f"request {record.request_id!r} has no debit of " + ", ".join(missing),
                actions=missing,
            )
        paid = [debit for debit in debits.values() if debit is not None]
        if any(debit.user_id != record.platform_user_id for debit in paid):
            return refusal(
                "request_conflict",
                detail=f"request {record.request_id!r} was debited to another account",
            )
        stored = StoredAsset(
            id=len(self._assets) + 1,
            record=record,
            ledger_entry_ids=tuple(sorted(debit.id for debit in paid)),
            created=_naive_utc(self._clock()),
        )
        self._assets[record.request_id] = stored
        return stored.as_contract(created=True)

    def _debit_locked(
        self,
        user_id: str,
        request_id: str,
        action: str,
        spec: rules.Spec,
        correlation_id: str | Absent,
    ) -> Result:
        account = self._accounts.get(user_id)
        if account is None:
            return refusal("unknown_account")
        earlier = self._debits.get((request_id, action))
        if earlier is not None:
            if earlier.user_id == user_id:
                return earlier.as_receipt("debited", replay=True)
            return refusal(
                "request_conflict",
                detail=f"request {request_id!r} action {action!r} was debited to another account",
            )
        tier = self._tiers[account.tier_code]
        forbidden = rules.tier_refusal(tier, action, spec)
        if forbidden is not None:
            return refusal(
                "tier_forbids",
                reason=forbidden.reason,
                tier=tier.code,
                detail=forbidden.detail,
                **forbidden.figures,
            )
        amount = rules.price(tier, action, spec)
        if amount > account.balance:
            return refusal("insufficient_credits", required=amount, balance=account.balance)
        account.balance -= amount
        entry = self._write(
            account,
            request_id,
            action,
            OPERATION_DEBIT,
            amount,
            False,
            correlation_id,
            rules.granted_model(tier, spec),
        )
        self._debits[(request_id, action)] = entry
        return entry.as_receipt("debited", replay=False)

    def _refund_locked(
        self,
        request_id: str,
        action: str,
        reason: str | Absent,
        correlation_id: str | Absent,
    ) -> Result:
        debit = self._debits.get((request_id, action))
        if debit is None:
            return refusal("nothing_to_refund")
        earlier = self._refunds.get((request_id, action))
        if earlier is not None:
            return earlier.as_receipt("refunded", replay=True)
        account = self._accounts[debit.user_id]
        account.balance += debit.amount
        entry = self._write(
            account,
            request_id,
            action,
            OPERATION_REFUND,
            debit.amount,
            reason,
            correlation_id,
            debit.model,
        )
        self._refunds[(request_id, action)] = entry
        return entry.as_receipt("refunded", replay=False)

    def _write(
        self,
        account: Account,
        request_id: str,
        action: str,
        operation: str,
        amount: int,
        reason: str | Absent,
        correlation_id: str | Absent,
        model: str | Absent = False,
    ) -> LedgerEntry:
        entry = LedgerEntry(
            id=len(self._entries) + 1,
            user_id=account.platform_user_id,
            request_id=request_id,
            action=action,
            operation=operation,
            amount=amount,
            balance_after=account.balance,
            reason=reason,
            correlation_id=correlation_id,
            created=_naive_utc(self._clock()),
            model=model,
        )
        self._entries.append(entry)
        return entry


def _entitlements(account: Account, tier: Tier) -> Result:
    return {
        "ok": True,
        "code": "ok",
        "user_id": account.platform_user_id,
        "tier": {"code": tier.code, "name": tier.name},
        "limits": {
            "formats": list(tier.formats),
            "max_width": tier.max_width,
            "max_height": tier.max_height,
            "max_samples_per_request": tier.max_samples_per_request,
            "models": list(tier.models),
            "default_model": tier.default_model,
            "advanced_models": tier.allow_advanced_models,
            "max_requests_in_flight": tier.max_requests_in_flight,
        },
        "prices": {
            "sample": tier.price_per_sample,
            "final": tier.price_final_asset,
            "regeneration_sample": tier.price_per_regeneration_sample,
        },
        "balance": account.balance,
    }


def _naive_utc(moment: datetime) -> datetime:
    """Compare in UTC without tzinfo, as Odoo stores ``create_date``, to the second."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.replace(microsecond=0)

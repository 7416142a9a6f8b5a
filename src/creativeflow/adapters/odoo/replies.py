"""Strict readers of the contract's replies: a documented shape becomes a domain value, a
business refusal becomes ``OdooRejected``, anything else is ``OdooContractError``.

Odoo cannot send ``None`` over XML-RPC: an absent value is ``false``, read here as ``None`` where
the domain type is optional. Integers must be ints (a bool is not one).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from creativeflow.adapters.odoo.errors import OdooContractError, OdooRejected
from creativeflow.domain.credits import (
    LEDGER_TIMESTAMP,
    CreditReceipt,
    Entitlements,
    LedgerEntry,
    LedgerPage,
    Prices,
    Quote,
    QuotedPrices,
    TierLimits,
)
from creativeflow.domain.generated_assets import GeneratedAsset, RecordedAsset

# The refusal codes each method documents, and the figures each code must carry.
REFUSALS: dict[str, frozenset[str]] = {
    "get_entitlements": frozenset({"unknown_account"}),
    "debit": frozenset(
        {
            "unknown_account",
            "invalid_request",
            "tier_forbids",
            "insufficient_credits",
            "request_conflict",
        }
    ),
    "refund": frozenset({"nothing_to_refund", "invalid_request"}),
    "ledger_by_requests": frozenset({"invalid_request"}),
    "ledger_window": frozenset({"invalid_request"}),
    "quote": frozenset({"unknown_account", "invalid_request"}),
    "ledger_for_user": frozenset({"unknown_account", "invalid_request"}),
    "record_generated_asset": frozenset(
        {
            "invalid_request",
            "unknown_account",
            "asset_conflict",
            "unknown_debit",
            "request_conflict",
        }
    ),
}
_FIGURE_TYPES: dict[str, dict[str, type]] = {
    "insufficient_credits": {"required": int, "balance": int},
    "tier_forbids": {"reason": str, "tier": str},
    "asset_conflict": {"differences": list},
    "unknown_debit": {"actions": list},
}
# Tier reasons that carry figures of their own (the tier's cap on unfinished requests).
_REASON_FIGURE_TYPES: dict[str, dict[str, type]] = {
    "too_many_requests_in_flight": {"requests_in_flight": int, "max_requests_in_flight": int},
}
_OPERATIONS = frozenset({"debit", "refund", "adjustment"})


class _Reply:
    """A dict reply of one method, with typed accessors that raise ``OdooContractError``."""

    def __init__(self, method: str, value: Any, where: str = "") -> None:
        if not isinstance(value, Mapping):
            raise OdooContractError(f"{method}: expected a dict{where}, got {type(value).__name__}")
        self.method = method
        self.value = value
        self.where = where

    def _get(self, key: str) -> Any:
        if key not in self.value:
            raise OdooContractError(f"{self.method}: key {key!r} missing{self.where}")
        return self.value[key]

    def _wrong(self, key: str, expected: str, value: Any) -> OdooContractError:
        return OdooContractError(
            f"{self.method}: {key!r}{self.where} should be {expected}, got {type(value).__name__}"
        )

    def integer(self, key: str) -> int:
        value = self._get(key)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self._wrong(key, "an int", value)
        return value

    def text(self, key: str) -> str:
        value = self._get(key)
        if not isinstance(value, str):
            raise self._wrong(key, "a str", value)
        return value

    def optional_text(self, key: str) -> str | None:
        value = self._get(key)
        if value is False:
            return None
        if not isinstance(value, str):
            raise self._wrong(key, "a str or false", value)
        return value

    def timestamp(self, key: str) -> str:
        """A ``"YYYY-MM-DD HH:MM:SS"`` text, as Odoo writes a Datetime."""
        value = self.text(key)
        try:
            datetime.strptime(value, LEDGER_TIMESTAMP)
        except ValueError:
            raise self._wrong(key, "a 'YYYY-MM-DD HH:MM:SS' timestamp", value) from None
        return value

    def optional_model(self, key: str) -> str | None:
        """A model code, or false; a reply from an Odoo older than the catalogue has no key."""
        if key not in self.value:
            return None
        return self.optional_text(key)

    def model_codes(self, key: str) -> tuple[str, ...]:
        """A list of model codes; absent from an Odoo older than the catalogue."""
        return self.texts(key) if key in self.value else ()

    def flag(self, key: str) -> bool:
        value = self._get(key)
        if not isinstance(value, bool):
            raise self._wrong(key, "a bool", value)
        return value

    def texts(self, key: str) -> tuple[str, ...]:
        value = self._get(key)
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise self._wrong(key, "a list of str", value)
        return tuple(value)

    def items(self, key: str) -> list[Any]:
        value = self._get(key)
        if not isinstance(value, list):
            raise self._wrong(key, "a list", value)
        return value

    def child(self, key: str) -> _Reply:
        return _Reply(self.method, self._get(key), f"{self.where} in {key!r}")


def accepted(method: str, value: Any, success_code: str) -> _Reply:
    """The reply of ``method`` if Odoo accepted the call; raises ``OdooRejected`` on a refusal."""
    reply = _Reply(method, value)
    ok = reply.flag("ok")
    code = reply.text("code")
    if ok:
        if code != success_code:
            raise OdooContractError(f"{method}: ok with code {code!r}, expected {success_code!r}")
        return reply
    raise _refusal(method, code, reply)


def _refusal(method: str, code: str, reply: _Reply) -> OdooRejected:
    if code not in REFUSALS[method]:
        raise OdooContractError(f"{method}: undocumented refusal code {code!r}")
    expected_figures = dict(_FIGURE_TYPES.get(code, {}))
    if code == "tier_forbids":
        expected_figures.update(_REASON_FIGURE_TYPES.get(reply.text("reason"), {}))
    for key, expected in expected_figures.items():
        if expected is int:
            reply.integer(key)
        elif expected is list:
            reply.texts(key)
        else:
            reply.text(key)
    if "detail" in reply.value:
        reply.optional_text("detail")
    figures = {key: value for key, value in reply.value.items() if key not in ("ok", "code")}
    return OdooRejected(code, **figures)


def entitlements(value: Any, user_id: str) -> Entitlements:
    reply = accepted("get_entitlements", value, "ok")
    _expect_echo(reply, "user_id", user_id)
    tier, limits, prices = reply.child("tier"), reply.child("limits"), reply.child("prices")
    return Entitlements(
        user_id=reply.text("user_id"),
        tier_code=tier.text("code"),
        tier_name=tier.text("name"),
        limits=TierLimits(
            formats=limits.texts("formats"),
            max_width=limits.integer("max_width"),
            max_height=limits.integer("max_height"),
            max_samples_per_request=limits.integer("max_samples_per_request"),
            max_requests_in_flight=limits.integer("max_requests_in_flight"),
            models=limits.model_codes("models"),
            default_model=limits.optional_model("default_model"),
        ),
        prices=Prices(
            sample=prices.integer("sample"),
            final=prices.integer("final"),
            regeneration_sample=prices.integer("regeneration_sample"),
        ),
        balance=reply.integer("balance"),
    )


def receipt(
    method: str,
    value: Any,
    success_code: str,
    request_id: str,
    action: str,
    user_id: str | None = None,
) -> CreditReceipt:
    """A debit (``debited``) or refund (``refunded``) receipt that echoes what was asked."""
    reply = accepted(method, value, success_code)
    _expect_echo(reply, "request_id", request_id)
    _expect_echo(reply, "action", action)
    if user_id is not None:
        _expect_echo(reply, "user_id", user_id)
    return CreditReceipt(
        entry_id=reply.integer("entry_id"),
        user_id=reply.text("user_id"),
        request_id=reply.text("request_id"),
        action=reply.text("action"),
        amount=reply.integer("amount"),
        balance_after=reply.integer("balance_after"),
        replay=reply.flag("replay"),
        model=reply.optional_model("model"),
    )


def quote(value: Any, user_id: str) -> Quote:
    reply = accepted("quote", value, "quoted")
    _expect_echo(reply, "user_id", user_id)
    allowed = reply.flag("allowed")
    reason = reply.optional_text("reason")
    if allowed == (reason is not None):
        raise OdooContractError("quote: a reason must be given exactly when it is not allowed")
    figures = {key: reply.integer(key) for key in _REASON_FIGURE_TYPES.get(reason or "", {})}
    prices = reply.child("prices")
    return Quote(
        user_id=reply.text("user_id"),
        tier_code=reply.text("tier"),
        allowed=allowed,
        reason=reason,
        prices=QuotedPrices(
            samples=prices.integer("samples"),
            final=prices.integer("final"),
            regeneration=prices.integer("regeneration"),
        ),
        balance=reply.integer("balance"),
        affordable=reply.flag("affordable"),
        figures=figures,
        model=reply.optional_model("model"),
        models=reply.model_codes("models"),
        default_model=reply.optional_model("default_model"),
    )


def recorded_asset(value: Any, asset: GeneratedAsset) -> RecordedAsset:
    """The asset Odoo recorded (or had recorded: ``created`` false), which must be the one
    asked for: a record of other values would have been an ``asset_conflict``."""
    reply = accepted("record_generated_asset", value, "recorded")
    _expect_echo(reply, "request_id", asset.request_id)
    _expect_echo(reply, "user_id", asset.user_id)
    _expect_echo(reply, "storage_key", asset.storage_key)
    _expect_echo(reply, "checksum_sha256", asset.checksum_sha256)
    if set(reply.texts("debit_actions")) != set(asset.debit_actions):
        raise OdooContractError("record_generated_asset: answered for other debits than asked")
    entry_ids = reply.items("ledger_entry_ids")
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in entry_ids):
        raise OdooContractError("record_generated_asset: 'ledger_entry_ids' should be ints")
    return RecordedAsset(
        odoo_id=reply.integer("asset_id"),
        created=reply.flag("created"),
        ledger_entry_ids=tuple(entry_ids),
    )


def user_ledger_page(value: Any) -> LedgerPage:
    reply = accepted("ledger_for_user", value, "ok")
    return LedgerPage(entries=_entries(reply), has_more=reply.flag("has_more"))


def ledger_entries(value: Any) -> tuple[LedgerEntry, ...]:
    reply = accepted("ledger_by_requests", value, "ok")
    return _entries(reply)


def ledger_page(value: Any) -> LedgerPage:
    reply = accepted("ledger_window", value, "ok")
    return LedgerPage(entries=_entries(reply), has_more=reply.flag("has_more"))


def _entries(reply: _Reply) -> tuple[LedgerEntry, ...]:
    return tuple(
        _entry(_Reply(reply.method, item, f" in entries[{index}]"))
        for index, item in enumerate(reply.items("entries"))
    )


def _entry(item: _Reply) -> LedgerEntry:
    operation = item.text("operation")
    if operation not in _OPERATIONS:
        raise OdooContractError(f"{item.method}: unknown operation {operation!r}{item.where}")
    return LedgerEntry(
        id=item.integer("id"),
        user_id=item.text("user_id"),
        request_id=item.optional_text("request_id"),
        action=item.optional_text("action"),
        operation=operation,
        amount=item.integer("amount"),
        balance_after=item.integer("balance_after"),
        reason=item.optional_text("reason"),
        correlation_id=item.optional_text("correlation_id"),
        created_at=item.timestamp("created_at"),
        model=item.optional_model("model"),
    )


def _expect_echo(reply: _Reply, key: str, expected: str) -> None:
    if reply.text(key) != expected:
        raise OdooContractError(f"{reply.method}: answered for another {key} than asked")

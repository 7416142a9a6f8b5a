"""The credit vocabulary shared by the use cases and the Odoo adapter.

Odoo is the authority over prices and balances; these types only carry what it answered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .errors import CreditsRefused

LEDGER_TIMESTAMP = "%Y-%m-%d %H:%M:%S"
"""How Odoo writes a ledger entry's ``create_date`` on the wire: UTC, to the second."""


@dataclass(frozen=True, slots=True)
class GenerationSpec:
    """What a debit is priced and tier-checked against."""

    format: str
    width: int
    height: int
    samples: int
    # the catalogue code of the model asked for; None: the tier's default (Odoo grants it)
    model: str | None = None
    # unfinished requests the user already has, for the tier's cap; None: not checked
    requests_in_flight: int | None = None

    def as_odoo_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "format": self.format,
            "width": self.width,
            "height": self.height,
            "samples": self.samples,
        }
        if self.model is not None:
            spec["model"] = self.model
        if self.requests_in_flight is not None:
            spec["requests_in_flight"] = self.requests_in_flight
        return spec


@dataclass(frozen=True, slots=True)
class TierLimits:
    formats: tuple[str, ...]
    max_width: int
    max_height: int
    max_samples_per_request: int
    max_requests_in_flight: int
    # the codes of the models the tier grants, in catalogue order, and the one a request that
    # names none runs on (None: the tier has none it can grant)
    models: tuple[str, ...] = ()
    default_model: str | None = None


@dataclass(frozen=True, slots=True)
class Prices:
    sample: int
    final: int
    regeneration_sample: int


@dataclass(frozen=True, slots=True)
class Entitlements:
    user_id: str
    tier_code: str
    tier_name: str
    limits: TierLimits
    prices: Prices
    balance: int


@dataclass(frozen=True, slots=True)
class CreditReceipt:
    """A debit or refund Odoo applied (or had already applied: ``replay``)."""

    entry_id: int
    user_id: str
    request_id: str
    action: str
    amount: int
    balance_after: int
    replay: bool
    # the model the debit granted (a refund names its debit's); None from an Odoo that
    # predates the model catalogue
    model: str | None = None


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    id: int
    user_id: str
    request_id: str | None
    action: str | None
    operation: str
    amount: int
    balance_after: int
    reason: str | None
    correlation_id: str | None
    created_at: str  # LEDGER_TIMESTAMP
    model: str | None = None  # the model the movement paid for; None for adjustments

    @property
    def created(self) -> datetime:
        """``created_at`` as an aware UTC moment."""
        return datetime.strptime(self.created_at, LEDGER_TIMESTAMP).replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class LedgerPage:
    entries: tuple[LedgerEntry, ...]
    has_more: bool = False


@dataclass(frozen=True, slots=True)
class QuotedPrices:
    """What each paid step of a request with this spec would take."""

    samples: int
    final: int
    regeneration: int  # one round of as many samples


@dataclass(frozen=True, slots=True)
class Quote:
    """Odoo's answer to "what would this request cost, and may I make it?": nothing charged.

    ``reason`` is the tier rule a submit would break (``None`` when ``allowed``); ``figures``
    carries the cap on unfinished requests when that is the reason."""

    user_id: str
    tier_code: str
    allowed: bool
    reason: str | None
    prices: QuotedPrices
    balance: int
    affordable: bool
    figures: dict[str, int] = field(default_factory=dict)
    # the model a submit would run on (None when the tier would not grant it), the tier's models
    model: str | None = None
    models: tuple[str, ...] = ()
    default_model: str | None = None

    def refusal(self) -> CreditsRefused | None:
        """The refusal a submit of this request would meet now (the plan first, then the
        balance, as Odoo checks them), or ``None``."""
        if not self.allowed:
            figures: dict[str, Any] = {
                "reason": self.reason,
                "tier": self.tier_code,
                **self.figures,
            }
            return CreditsRefused("tier_forbids", **figures)
        if not self.affordable:
            return CreditsRefused(
                "insufficient_credits", required=self.prices.samples, balance=self.balance
            )
        return None

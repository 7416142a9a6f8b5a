"""The credit vocabulary shared by the use cases and the Odoo adapter.

Odoo is the authority over prices and balances; these types only carry what it answered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class GenerationSpec:
    """What a debit is priced and tier-checked against."""

    format: str
    width: int
    height: int
    samples: int
    advanced_model: bool = False
    # unfinished requests the user already has, for the tier's cap; None: not checked
    requests_in_flight: int | None = None

    def as_odoo_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "format": self.format,
            "width": self.width,
            "height": self.height,
            "samples": self.samples,
            "advanced_model": self.advanced_model,
        }
        if self.requests_in_flight is not None:
            spec["requests_in_flight"] = self.requests_in_flight
        return spec


@dataclass(frozen=True, slots=True)
class TierLimits:
    formats: tuple[str, ...]
    max_width: int
    max_height: int
    max_samples_per_request: int
    advanced_models: bool
    max_requests_in_flight: int


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
    created_at: str


@dataclass(frozen=True, slots=True)
class LedgerPage:
    entries: tuple[LedgerEntry, ...]
    has_more: bool = False

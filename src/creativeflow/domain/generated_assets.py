"""The final asset of a request as Odoo records it: where it is stored, what it is, and the
debits that paid for it (``creativeflow.generated.asset``, ``odoo_contracts/README.md``).

Odoo checks every value (``invalid_request`` when one breaks the contract's rules); these types
only carry them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class GeneratedAsset:
    """What the orchestrator asks Odoo to record for one request, once.

    ``debit_actions`` are the idempotency keys of the request's debits as the tracking knows
    them: a debit is (request id, action) in Odoo's ledger, so the actions name them
    (``samples``, ``regeneration-1``, ``final``...). Odoo links those ledger entries to the
    asset after checking they are this request's debits on this user's account.
    """

    request_id: str
    user_id: str
    storage_key: str
    format: str  # lower case: png, jpeg, webp
    width: int
    height: int
    checksum_sha256: str  # 64 lower-case hex digits
    byte_size: int
    debit_actions: tuple[str, ...]

    def as_odoo_asset(self) -> dict[str, Any]:
        """The struct ``record_generated_asset`` takes (its keys are the contract's)."""
        return {
            "request_id": self.request_id,
            "platform_user_id": self.user_id,
            "storage_key": self.storage_key,
            "format": self.format,
            "width": self.width,
            "height": self.height,
            "checksum_sha256": self.checksum_sha256,
            "byte_size": self.byte_size,
            "debit_actions": list(self.debit_actions),
        }


@dataclass(frozen=True, slots=True)
class RecordedAsset:
    """Odoo's record of a generated asset: ``created`` is False when the same asset had
    already been recorded (a replay: nothing was written)."""

    odoo_id: int
    created: bool
    ledger_entry_ids: tuple[int, ...] = ()

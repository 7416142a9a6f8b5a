"""What a request cost its user, stage by stage, as the journal of credit operations tells it.

Odoo's ledger is the authority; the journal records every debit and refund this service asked
for and what came of it, which is what a user needs to read their bill: what each paid step
charged, and what came back.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from .model import CreditOperation
from .states import CreditOperationKind, CreditOperationStatus


class ChargeState(enum.StrEnum):
    PENDING = "pending"  # the debit is being asked for
    UNKNOWN = "unknown"  # Odoo's answer was lost: recovery settles it against the ledger
    REFUSED = "refused"  # Odoo refused it; nothing was charged
    CHARGED = "charged"
    REFUND_PENDING = "refund_pending"  # charged, and the refund is on its way
    REFUNDED = "refunded"


@dataclass(frozen=True, slots=True)
class StageCharge:
    """One paid step: its action (``samples``, ``final``, ``regeneration-1``...), what it
    charged and what was refunded."""

    action: str
    state: ChargeState
    charged: int
    refunded: int


_DEBIT_STATES = {
    CreditOperationStatus.PENDING: ChargeState.PENDING,
    CreditOperationStatus.UNKNOWN: ChargeState.UNKNOWN,
    CreditOperationStatus.REFUSED: ChargeState.REFUSED,
    CreditOperationStatus.APPLIED: ChargeState.CHARGED,
    CreditOperationStatus.REFUNDED: ChargeState.REFUNDED,
}


def stage_charges(operations: Iterable[CreditOperation]) -> tuple[StageCharge, ...]:
    """One entry a debit, in the order they were asked for."""
    operations = list(operations)
    refunding = {
        op.action
        for op in operations
        if op.kind is CreditOperationKind.REFUND and op.status is not CreditOperationStatus.REFUSED
    }
    charges = []
    for debit in operations:
        if debit.kind is not CreditOperationKind.DEBIT:
            continue
        state = _DEBIT_STATES[debit.status]
        if state is ChargeState.CHARGED and debit.action in refunding:
            state = ChargeState.REFUND_PENDING
        paid = state in (ChargeState.CHARGED, ChargeState.REFUND_PENDING, ChargeState.REFUNDED)
        charged = (debit.amount or 0) if paid else 0
        refunded = charged if state is ChargeState.REFUNDED else 0
        charges.append(StageCharge(debit.action, state, charged, refunded))
    return tuple(charges)

"""The addon's rule table on the emulator's rules and on ``FakeCredits``, which run one
implementation: a case the addon passes and these fail (or the reverse) is a drift."""

from __future__ import annotations

import asyncio

import pytest

from creativeflow.adapters.odoo import OdooRejected
from creativeflow_devstack.fake_credits import FakeCredits
from creativeflow_devstack.odoo_emulator import rules
from tests.tier_rules import CASES, TABLE, TIER, RuleCase

BY_NAME = pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])


def test_the_table_covers_every_tier_reason_and_every_kind_of_action() -> None:
    reasons = {case.reason for case in CASES if case.reason}
    assert reasons == {
        "format_not_allowed",
        "resolution_not_allowed",
        "too_many_samples",
        "model_not_allowed",
        "too_many_requests_in_flight",
    }
    kinds = {case.action.split("-")[0] for case in CASES if case.amount is not None}
    assert kinds == {"samples", "final", "regeneration"}
    assert all((case.amount is None) != (case.reason is None) for case in CASES)


@BY_NAME
def test_the_emulators_rules(case: RuleCase) -> None:
    spec = rules.parse_spec(case.spec.as_odoo_spec())
    refusal = rules.tier_refusal(TIER, case.action, spec)
    if case.reason is not None:
        assert refusal is not None and refusal.reason == case.reason
    else:
        assert refusal is None
        assert rules.price(TIER, case.action, spec) == case.amount
        if case.model is not None:
            assert rules.granted_model(TIER, spec) == case.model


@BY_NAME
def test_fake_credits(case: RuleCase) -> None:
    credits = FakeCredits(tiers=[TIER])
    credits.add_account("table-user", tier=TIER.code, balance=500)

    async def debit() -> int:
        receipt = await credits.debit("table-user", "table-req", case.action, case.spec, "corr")
        if case.model is not None:
            assert receipt.model == case.model
        return receipt.amount

    if case.reason is not None:
        with pytest.raises(OdooRejected) as refused:
            asyncio.run(debit())
        assert refused.value.code == "tier_forbids"
        assert refused.value.figures["reason"] == case.reason
        assert refused.value.figures["tier"] == TABLE["tier"]["code"]
        assert credits.ledger() == ()
        assert credits.balance("table-user") == 500
    else:
        assert asyncio.run(debit()) == case.amount
        assert credits.balance("table-user") == 500 - case.amount

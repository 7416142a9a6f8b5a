"""The addon's rule table (``tier_rules.json``), through the adapter, on every protocol: the
addon's TransactionCase runs the same cases on Odoo itself."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from creativeflow.adapters.odoo import OdooClient, OdooRejected
from tests.tier_rules import CASES, TIER, RuleCase

from .conftest import fresh_id


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_the_addons_rule_table(
    client: OdooClient, new_account: Callable[..., str], case: RuleCase
) -> None:
    user = new_account(tier=TIER.code, balance=500)
    request_id = fresh_id("req")

    if case.reason is not None:
        with pytest.raises(OdooRejected) as refused:
            client.debit(user, request_id, case.action, case.spec, fresh_id("corr"))
        assert refused.value.code == "tier_forbids"
        assert refused.value.figures["reason"] == case.reason
        assert refused.value.figures["tier"] == TIER.code
        assert client.ledger_by_requests([request_id]) == ()
        assert client.get_entitlements(user).balance == 500
    else:
        receipt = client.debit(user, request_id, case.action, case.spec, fresh_id("corr"))
        assert receipt.amount == case.amount
        assert client.get_entitlements(user).balance == 500 - case.amount
        if case.model is not None:
            assert receipt.model == case.model
            (entry,) = client.ledger_by_requests([request_id])
            assert entry.model == case.model

"""The model catalogue, through the adapter, on every protocol: the tier's allowed models and
its default in the entitlements and the quote, the model a debit grants (and its ledger entry,
its replay and its refund name), and the refusal of a model the tier does not grant."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from creativeflow.adapters.odoo import OdooClient, OdooRejected

from .conftest import SERVICE, fresh_id, spec

NewAccount = Callable[..., str]
STANDARD = "creativeflow-standard-v1"
DRAFT = "creativeflow-draft-v1"
ADVANCED = "creativeflow-advanced-v1"


def _call(client: OdooClient, method: str, **arguments: Any) -> Any:
    """A raw call by named arguments (every protocol takes them), to send what the adapter
    never sends."""
    return client.call(SERVICE, method, **arguments)


def test_entitlements_list_the_tiers_models_and_its_default(
    client: OdooClient, new_account: NewAccount
) -> None:
    free = client.get_entitlements(new_account(tier="free")).limits
    pro = client.get_entitlements(new_account(tier="pro")).limits

    assert STANDARD in free.models and ADVANCED not in free.models
    assert {STANDARD, ADVANCED} <= set(pro.models)
    for limits in (free, pro):
        assert limits.default_model in limits.models


def test_no_model_asked_runs_on_the_tiers_default(
    client: OdooClient, new_account: NewAccount
) -> None:
    user = new_account(tier="pro", balance=100)
    default = client.get_entitlements(user).limits.default_model
    request_id = fresh_id("req")

    receipt = client.debit(user, request_id, "samples", spec(), fresh_id("corr"))

    assert default is not None and receipt.model == default
    (entry,) = client.ledger_by_requests([request_id])
    assert entry.model == default


def test_an_allowed_model_is_granted_and_the_ledger_records_it(
    client: OdooClient, new_account: NewAccount
) -> None:
    user = new_account(tier="pro", balance=100)
    request_id = fresh_id("req")

    receipt = client.debit(user, request_id, "samples", spec(2, model=ADVANCED), fresh_id("corr"))
    refund = client.refund(request_id, "samples", "render failed", fresh_id("corr"))

    assert (receipt.model, refund.model) == (ADVANCED, ADVANCED)
    entries = client.ledger_by_requests([request_id])
    assert [(e.operation, e.model) for e in entries] == [("debit", ADVANCED), ("refund", ADVANCED)]
    (newest, *_) = client.ledger_for_user(user, limit=1).entries
    assert newest.model == ADVANCED


def test_a_model_the_tier_does_not_grant_is_refused_and_nothing_is_charged(
    client: OdooClient, new_account: NewAccount
) -> None:
    user = new_account(tier="free", balance=100)
    request_id = fresh_id("req")

    for model in (ADVANCED, "cf-contract-no-such-model"):
        with pytest.raises(OdooRejected) as refused:
            client.debit(user, request_id, "samples", spec(model=model), fresh_id("corr"))
        assert refused.value.code == "tier_forbids"
        assert refused.value.figures["reason"] == "model_not_allowed"
        assert refused.value.figures["tier"] == "free"
        assert refused.value.status_code == 403

    assert client.ledger_by_requests([request_id]) == ()
    assert client.get_entitlements(user).balance == 100


def test_a_replay_answers_the_model_first_granted(
    client: OdooClient, new_account: NewAccount
) -> None:
    user = new_account(tier="pro", balance=100)
    request_id = fresh_id("req")
    first = client.debit(user, request_id, "samples", spec(model=DRAFT), fresh_id("corr"))

    again = client.debit(user, request_id, "samples", spec(model=ADVANCED), fresh_id("corr"))

    assert again.replay is True
    assert (first.model, again.model) == (DRAFT, DRAFT)


def test_the_quote_names_the_model_a_submit_would_run_on(
    client: OdooClient, new_account: NewAccount
) -> None:
    user = new_account(tier="free", balance=100)
    limits = client.get_entitlements(user).limits

    default = client.quote(user, spec())
    refused = client.quote(user, spec(model=ADVANCED))

    assert (default.allowed, default.model) == (True, limits.default_model)
    assert (default.models, default.default_model) == (limits.models, limits.default_model)
    assert (refused.allowed, refused.reason, refused.model) == (False, "model_not_allowed", None)


def test_a_model_code_out_of_syntax_is_an_invalid_request(
    client: OdooClient, new_account: NewAccount
) -> None:
    user = new_account(tier="pro", balance=100)
    request_id = fresh_id("req")

    for bad in ("Advanced", "creativeflow advanced", "x" * 65, 7, True, ""):
        raw_spec = {**spec().as_odoo_spec(), "model": bad}
        answer = _call(
            client,
            "debit",
            platform_user_id=user,
            request_id=request_id,
            action="samples",
            spec=raw_spec,
        )
        assert (answer["ok"], answer["code"]) == (False, "invalid_request"), bad
        assert "spec.model" in answer["detail"]

    assert client.get_entitlements(user).balance == 100


def test_older_callers_advanced_model_flag_asks_for_the_advanced_model(
    client: OdooClient, new_account: NewAccount
) -> None:
    """An orchestrator older than the catalogue sends ``advanced_model`` and no ``model``."""
    free, pro = new_account(tier="free", balance=100), new_account(tier="pro", balance=100)
    old_spec = {"format": "png", "width": 512, "height": 512, "samples": 1}

    def debit(user: str, advanced: bool) -> Any:
        return _call(
            client,
            "debit",
            platform_user_id=user,
            request_id=fresh_id("req"),
            action="samples",
            spec={**old_spec, "advanced_model": advanced},
        )

    assert debit(pro, True)["model"] == ADVANCED
    assert debit(free, True)["reason"] == "model_not_allowed"
    assert debit(free, False)["model"] == client.get_entitlements(free).limits.default_model
    limits = _call(client, "get_entitlements", platform_user_id=pro)["limits"]
    assert limits["advanced_models"] is True

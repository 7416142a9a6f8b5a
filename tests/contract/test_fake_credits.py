"""``FakeCredits`` keeps the contract's rules, so use-case unit tests on it mean something."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest

from creativeflow.adapters.odoo import (
    OdooOutcomeUnknown,
    OdooRejected,
    OdooUnavailable,
)
from creativeflow.domain.credits import GenerationSpec
from creativeflow.domain.generated_assets import GeneratedAsset
from creativeflow.services.ports import CreditLedger
from creativeflow_devstack.fake_credits import FakeCredits

from .conftest import spec

T = TypeVar("T")


def run(awaitable: Awaitable[T]) -> T:
    async def wrapper() -> T:
        return await awaitable

    return asyncio.run(wrapper())


def _refusal(awaitable: Awaitable[object]) -> OdooRejected:
    with pytest.raises(OdooRejected) as refused:
        run(awaitable)
    return refused.value


def test_the_fake_is_a_credit_ledger() -> None:
    port: CreditLedger = FakeCredits()
    assert run(port.ledger_by_requests(["nothing"])) == ()


def test_debit_prices_replays_and_refunds_once() -> None:
    fake = FakeCredits()
    fake.add_account("u", tier="pro", balance=100)

    debit = run(fake.debit("u", "r", "samples", spec(samples=3), "c"))
    replay = run(fake.debit("u", "r", "samples", spec(samples=3), "c"))
    final = run(fake.debit("u", "r", "final-2", spec(samples=20), "c"))
    refund = run(fake.refund("r", "samples", "failed", "c"))
    again = run(fake.refund("r", "samples", "failed", "c"))

    assert (debit.amount, debit.balance_after, debit.replay) == (6, 94, False)
    assert (replay.entry_id, replay.replay) == (debit.entry_id, True)
    assert final.amount == 10
    assert (refund.amount, refund.balance_after, refund.replay) == (6, 90, False)
    assert (again.entry_id, again.replay) == (refund.entry_id, True)
    assert fake.balance("u") == 90
    assert run(fake.debit("u", "r", "samples", spec(samples=3), "c")).replay is True
    assert [e.operation for e in run(fake.ledger_by_requests(["r"]))] == [
        "debit",
        "debit",
        "refund",
    ]


def test_refusals_carry_the_contract_codes() -> None:
    fake = FakeCredits()
    fake.add_account("free", tier="free", balance=3)
    fake.add_account("other", tier="pro", balance=100)
    run(fake.debit("other", "taken", "samples", spec(), "c"))

    assert _refusal(fake.get_entitlements("nobody")).code == "unknown_account"
    assert _refusal(fake.debit("free", "r", "bogus", spec(), "c")).code == "invalid_request"
    assert (
        _refusal(fake.debit("free", "r", "samples", spec(samples=0), "c")).code == "invalid_request"
    )
    assert (
        _refusal(fake.debit("free", "r", "samples", spec(fmt="webp"), "c")).code == "tier_forbids"
    )
    assert _refusal(fake.debit("free", "taken", "samples", spec(), "c")).code == "request_conflict"
    assert _refusal(fake.refund("never", "samples", "x", "c")).code == "nothing_to_refund"
    short = _refusal(fake.debit("free", "r2", "final", spec(), "c"))
    assert (short.code, short.figures) == ("insufficient_credits", {"required": 5, "balance": 3})
    assert fake.balance("free") == 3


@pytest.mark.parametrize(
    ("reason", "refused_spec"),
    [
        ("format_not_allowed", spec(9, fmt="gif", width=5000, model="creativeflow-advanced-v1")),
        ("resolution_not_allowed", spec(9, width=5000, model="creativeflow-advanced-v1")),
        ("too_many_samples", spec(9, model="creativeflow-advanced-v1")),
        ("model_not_allowed", spec(1, model="creativeflow-advanced-v1")),
    ],
)
def test_tier_reasons_come_in_the_documented_order(
    reason: str, refused_spec: GenerationSpec
) -> None:
    fake = FakeCredits()
    fake.add_account("free", tier="free", balance=100)

    refused = _refusal(fake.debit("free", "r", "samples", refused_spec, "c"))

    assert (refused.code, refused.figures["reason"], refused.figures["tier"]) == (
        "tier_forbids",
        reason,
        "free",
    )


def test_injected_faults_play_unavailable_and_lost_replies() -> None:
    fake = FakeCredits()
    fake.add_account("u", tier="pro", balance=100)
    fake.fail_next("debit", OdooUnavailable("down"))
    fake.fail_next("debit", OdooOutcomeUnknown("reply lost"), apply_first=True)

    with pytest.raises(OdooUnavailable):
        run(fake.debit("u", "r", "samples", spec(samples=1), "c"))
    assert fake.balance("u") == 100
    with pytest.raises(OdooOutcomeUnknown):
        run(fake.debit("u", "r", "samples", spec(samples=1), "c"))
    assert fake.balance("u") == 98
    assert run(fake.debit("u", "r", "samples", spec(samples=1), "c")).replay is True
    assert fake.calls == ["debit", "debit", "debit"]


def test_ledger_window_pages_by_creation_time() -> None:
    start = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    ticks = iter(start + timedelta(minutes=n) for n in range(10))
    fake = FakeCredits(clock=lambda: next(ticks))
    fake.add_account("u", tier="pro", balance=100)
    for n in range(4):
        run(fake.debit("u", f"r{n}", "samples", spec(), "c"))

    page = run(fake.ledger_window(start + timedelta(minutes=1), start + timedelta(minutes=3), 1))
    rest = run(fake.ledger_window(start + timedelta(minutes=1), start + timedelta(minutes=3), 1, 1))

    assert [e.request_id for e in page.entries] == ["r1"] and page.has_more is True
    assert [e.request_id for e in rest.entries] == ["r2"] and rest.has_more is False


def test_the_cap_on_unfinished_requests_is_the_last_tier_rule() -> None:
    fake = FakeCredits()
    fake.add_account("free", tier="free", balance=100)  # free: cap of 2 unfinished requests

    at_cap = _refusal(fake.debit("free", "r-1", "samples", spec(requests_in_flight=2), "c"))
    advanced_first = _refusal(
        fake.debit(
            "free",
            "r-2",
            "samples",
            spec(model="creativeflow-advanced-v1", requests_in_flight=2),
            "c",
        )
    )
    below = run(fake.debit("free", "r-3", "samples", spec(requests_in_flight=1), "c"))
    unchecked = run(fake.debit("free", "r-4", "samples", spec(), "c"))
    regeneration = run(fake.debit("free", "r-3", "regeneration-1", spec(requests_in_flight=9), "c"))

    assert at_cap.code == "tier_forbids"
    assert at_cap.status_code == 429
    assert at_cap.figures == {
        "reason": "too_many_requests_in_flight",
        "tier": "free",
        "requests_in_flight": 2,
        "max_requests_in_flight": 2,
    }
    assert advanced_first.figures["reason"] == "model_not_allowed"
    assert below.replay is unchecked.replay is regeneration.replay is False


def test_a_replay_ignores_the_cap_and_a_negative_count_is_invalid() -> None:
    fake = FakeCredits()
    fake.add_account("u", tier="free", balance=100)
    first = run(fake.debit("u", "r", "samples", spec(requests_in_flight=0), "c"))

    again = run(fake.debit("u", "r", "samples", spec(requests_in_flight=5), "c"))
    invalid = _refusal(fake.debit("u", "r-2", "samples", spec(requests_in_flight=-1), "c"))

    assert (again.replay, again.entry_id) == (True, first.entry_id)
    assert invalid.code == "invalid_request"


def _asset(user: str, request_id: str, *actions: str, **changes: Any) -> GeneratedAsset:
    asset = GeneratedAsset(
        request_id=request_id,
        user_id=user,
        storage_key=f"assets/{request_id}.png",
        format="png",
        width=1024,
        height=1024,
        checksum_sha256="ab" * 32,
        byte_size=2048,
        debit_actions=actions or ("samples", "final"),
    )
    return dataclasses.replace(asset, **changes)


def test_an_asset_is_recorded_once_per_request_with_its_debits() -> None:
    fake = FakeCredits()
    fake.add_account("u", tier="pro", balance=100)
    fake.add_account("other", tier="pro", balance=100)
    samples = run(fake.debit("u", "r", "samples", spec(), "c"))
    final = run(fake.debit("u", "r", "final", spec(), "c"))

    first = run(fake.record_generated_asset(_asset("u", "r")))
    again = run(fake.record_generated_asset(_asset("u", "r", "final", "samples")))
    conflict = _refusal(fake.record_generated_asset(_asset("u", "r", byte_size=1)))
    stranger = _refusal(fake.record_generated_asset(_asset("other", "r")))
    unpaid = _refusal(fake.record_generated_asset(_asset("u", "r-2", "final")))
    invalid = _refusal(fake.record_generated_asset(_asset("u", "r", checksum_sha256="AB" * 32)))

    assert (first.created, first.ledger_entry_ids) == (True, (samples.entry_id, final.entry_id))
    assert (again.odoo_id, again.created) == (first.odoo_id, False)
    assert (conflict.code, conflict.figures["differences"]) == ("asset_conflict", ["byte_size"])
    assert stranger.figures["differences"] == ["platform_user_id"]
    assert (unpaid.code, unpaid.figures["actions"]) == ("unknown_debit", ["final"])
    assert invalid.code == "invalid_request"
    assert [a["byte_size"] for a in fake.assets()] == [2048]
    assert fake.balance("u") == 100 - samples.amount - final.amount


def test_the_fake_refuses_debits_of_another_account_and_plays_a_lost_reply() -> None:
    fake = FakeCredits()
    fake.add_account("payer", tier="pro", balance=100)
    fake.add_account("other", tier="pro", balance=100)
    run(fake.debit("payer", "r", "final", spec(), "c"))

    conflict = _refusal(fake.record_generated_asset(_asset("other", "r", "final")))
    fake.fail_next("record_generated_asset", OdooOutcomeUnknown("lost"), apply_first=True)
    with pytest.raises(OdooOutcomeUnknown):
        run(fake.record_generated_asset(_asset("payer", "r", "final")))
    replay = run(fake.record_generated_asset(_asset("payer", "r", "final")))

    assert conflict.code == "request_conflict"
    assert replay.created is False
    assert fake.calls[-3:] == ["record_generated_asset"] * 3


def test_the_fake_grants_models_as_odoo_does() -> None:
    fake = FakeCredits()
    fake.add_account("free", tier="free", balance=100)
    fake.add_account("studio", tier="studio", balance=100)

    limits = run(fake.get_entitlements("free")).limits
    default = run(fake.debit("free", "r-1", "samples", spec(), "c"))
    named = run(fake.debit("free", "r-2", "samples", spec(model="creativeflow-draft-v1"), "c"))
    studio = run(fake.debit("studio", "r-3", "samples", spec(), "c"))
    refused = _refusal(
        fake.debit("free", "r-4", "samples", spec(model="creativeflow-advanced-v1"), "c")
    )
    refund = run(fake.refund("r-2", "samples", "failed", "c"))
    quote = run(fake.quote("free", spec(model="creativeflow-advanced-v1")))

    assert limits.models == ("creativeflow-standard-v1", "creativeflow-draft-v1")
    assert limits.default_model == "creativeflow-standard-v1"
    assert (default.model, named.model, studio.model) == (
        "creativeflow-standard-v1",
        "creativeflow-draft-v1",
        "creativeflow-advanced-v1",
    )
    assert (refused.code, refused.figures["reason"]) == ("tier_forbids", "model_not_allowed")
    assert refund.model == "creativeflow-draft-v1"
    assert [e.model for e in fake.ledger() if e.request_id == "r-2"] == [
        "creativeflow-draft-v1"
    ] * 2
    assert (quote.allowed, quote.reason, quote.model) == (False, "model_not_allowed", None)
    assert fake.balance("free") == 100 - default.amount

"""``FakeCredits`` keeps the contract's rules, so use-case unit tests on it mean something."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest

from creativeflow.adapters.odoo import (
    OdooOutcomeUnknown,
    OdooRejected,
    OdooUnavailable,
)
from creativeflow.domain.credits import GenerationSpec
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

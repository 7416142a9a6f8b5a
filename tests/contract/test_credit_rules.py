"""The contract's business rules, through the adapter, on every protocol."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from creativeflow.adapters.odoo import OdooClient, OdooRejected
from creativeflow.domain.credits import Entitlements, GenerationSpec, LedgerEntry
from creativeflow.domain.errors import CreditsRefused

from .conftest import SERVICE, fresh_id, spec

NewAccount = Callable[..., str]
ADVANCED = "creativeflow-advanced-v1"


def test_entitlements_of_a_pro_account(client: OdooClient, new_account: NewAccount) -> None:
    user = new_account(tier="pro", balance=123)

    entitlements = client.get_entitlements(user)

    assert isinstance(entitlements, Entitlements)
    assert entitlements.user_id == user
    assert entitlements.tier_code == "pro"
    assert entitlements.balance == 123
    assert "png" in entitlements.limits.formats
    assert entitlements.limits.max_width > 0 and entitlements.limits.max_height > 0
    assert entitlements.limits.max_samples_per_request > 0
    assert entitlements.prices.sample >= 0 and entitlements.prices.final >= 0


def test_entitlements_of_an_unknown_user_are_refused(client: OdooClient) -> None:
    with pytest.raises(OdooRejected) as refused:
        client.get_entitlements(fresh_id("nobody"))

    assert refused.value.code == "unknown_account"
    assert isinstance(refused.value, CreditsRefused)


def test_a_debit_is_priced_by_odoo_and_lowers_the_balance(
    client: OdooClient, new_account: NewAccount
) -> None:
    user = new_account(tier="pro", balance=100)
    price = client.get_entitlements(user).prices.sample
    request_id, correlation_id = fresh_id("req"), fresh_id("corr")

    receipt = client.debit(user, request_id, "samples", spec(samples=3), correlation_id)

    assert receipt.replay is False
    assert (receipt.user_id, receipt.request_id, receipt.action) == (user, request_id, "samples")
    assert receipt.amount == 3 * price
    assert receipt.balance_after == 100 - 3 * price
    assert client.get_entitlements(user).balance == 100 - 3 * price
    (entry,) = client.ledger_by_requests([request_id])
    assert (entry.id, entry.operation, entry.amount) == (receipt.entry_id, "debit", receipt.amount)
    assert entry.correlation_id == correlation_id
    assert entry.reason is None


def test_final_and_regeneration_are_priced_by_their_own_prices(
    client: OdooClient, new_account: NewAccount
) -> None:
    user = new_account(tier="pro", balance=200)
    prices = client.get_entitlements(user).prices
    request_id = fresh_id("req")

    final = client.debit(user, request_id, "final", spec(samples=1), fresh_id("corr"))
    regeneration = client.debit(user, request_id, "regeneration-1", spec(samples=2), "")

    assert final.amount == prices.final
    assert regeneration.amount == 2 * prices.regeneration_sample
    assert regeneration.balance_after == 200 - prices.final - 2 * prices.regeneration_sample


def test_insufficient_credits_is_a_refusal_and_changes_nothing(
    client: OdooClient, new_account: NewAccount
) -> None:
    user = new_account(tier="pro", balance=3)
    price = client.get_entitlements(user).prices.sample
    request_id = fresh_id("req")
    samples = 3 // price + 1

    with pytest.raises(OdooRejected) as refused:
        client.debit(user, request_id, "samples", spec(samples=samples), fresh_id("corr"))

    assert refused.value.code == "insufficient_credits"
    assert refused.value.figures == {"required": samples * price, "balance": 3}
    assert refused.value.status_code == 402
    assert client.get_entitlements(user).balance == 3
    assert client.ledger_by_requests([request_id]) == ()


def test_a_debit_for_an_unknown_account_is_refused(client: OdooClient) -> None:
    with pytest.raises(OdooRejected) as refused:
        client.debit(fresh_id("nobody"), fresh_id("req"), "samples", spec(), fresh_id("corr"))

    assert refused.value.code == "unknown_account"


@pytest.mark.parametrize(
    ("action", "bad_spec"),
    [
        ("bogus-action", spec()),
        ("regeneration-0", spec()),
        ("final-1", spec()),
        ("samples", spec(samples=0)),
        ("samples", spec(width=0)),
    ],
)
def test_invalid_arguments_are_refused_as_invalid_request(
    client: OdooClient, new_account: NewAccount, action: str, bad_spec: GenerationSpec
) -> None:
    user = new_account(tier="pro", balance=100)

    with pytest.raises(OdooRejected) as refused:
        client.debit(user, fresh_id("req"), action, bad_spec, fresh_id("corr"))

    assert refused.value.code == "invalid_request"
    assert refused.value.status_code == 422
    assert client.get_entitlements(user).balance == 100


def _free_tier(
    client: OdooClient, new_account: NewAccount, balance: int = 100
) -> tuple[str, Entitlements]:
    user = new_account(tier="free", balance=balance)
    return user, client.get_entitlements(user)


def test_each_tier_rule_refuses_with_its_reason_in_the_documented_order(
    client: OdooClient, new_account: NewAccount
) -> None:
    user, free = _free_tier(client, new_account)
    limits = free.limits
    if ADVANCED in limits.models:
        pytest.skip("the target's free tier allows the advanced model")
    bad_format = next(f for f in ("gif", "bmp", "tiff", "avif") if f not in limits.formats)
    good_format = limits.formats[0]
    too_wide = limits.max_width + 1
    too_many = limits.max_samples_per_request + 1
    cases = [
        # every rule broken: the first in the table wins, and so on down the table
        ("format_not_allowed", spec(too_many, fmt=bad_format, width=too_wide, model=ADVANCED)),
        (
            "resolution_not_allowed",
            spec(too_many, fmt=good_format, width=too_wide, model=ADVANCED),
        ),
        ("resolution_not_allowed", spec(1, fmt=good_format, height=limits.max_height + 1)),
        ("too_many_samples", spec(too_many, fmt=good_format, model=ADVANCED)),
        ("model_not_allowed", spec(1, fmt=good_format, model=ADVANCED)),
    ]

    for reason, refused_spec in cases:
        request_id = fresh_id("req")
        with pytest.raises(OdooRejected) as refused:
            client.debit(user, request_id, "samples", refused_spec, fresh_id("corr"))
        assert refused.value.code == "tier_forbids", reason
        assert refused.value.figures["reason"] == reason
        assert refused.value.figures["tier"] == "free"
        assert refused.value.status_code == 403
        assert client.ledger_by_requests([request_id]) == ()

    assert client.get_entitlements(user).balance == 100


def test_the_sample_cap_does_not_apply_to_the_final_asset(
    client: OdooClient, new_account: NewAccount
) -> None:
    user, free = _free_tier(client, new_account)
    too_many = free.limits.max_samples_per_request + 1

    request_id = fresh_id("req")

    final = client.debit(user, request_id, "final", spec(too_many), fresh_id("corr"))
    client.refund(request_id, "final", "final asset failed", fresh_id("corr"))
    second_attempt = client.debit(user, request_id, "final-2", spec(too_many), fresh_id("corr"))

    assert final.amount == second_attempt.amount == free.prices.final
    assert second_attempt.replay is False
    assert client.get_entitlements(user).balance == 100 - free.prices.final


def test_a_repeated_debit_is_a_replay_with_one_entry_and_one_deduction(
    client: OdooClient, new_account: NewAccount
) -> None:
    user = new_account(tier="pro", balance=100)
    request_id = fresh_id("req")

    first = client.debit(user, request_id, "samples", spec(samples=2), fresh_id("corr"))
    second = client.debit(user, request_id, "samples", spec(samples=2), fresh_id("corr"))

    assert first.replay is False
    assert second.replay is True
    assert (second.entry_id, second.amount, second.balance_after) == (
        first.entry_id,
        first.amount,
        first.balance_after,
    )
    assert client.get_entitlements(user).balance == 100 - first.amount
    assert [entry.id for entry in client.ledger_by_requests([request_id])] == [first.entry_id]


def test_a_replay_holds_whatever_the_balance_is_now(
    client: OdooClient, new_account: NewAccount
) -> None:
    final_price = client.get_entitlements(new_account(tier="pro", balance=0)).prices.final
    user = new_account(tier="pro", balance=final_price)
    request_id = fresh_id("req")
    first = client.debit(user, request_id, "final", spec(), fresh_id("corr"))
    assert client.get_entitlements(user).balance == 0

    again = client.debit(user, request_id, "final", spec(), fresh_id("corr"))

    assert again.replay is True
    assert (again.entry_id, again.balance_after) == (first.entry_id, 0)


def test_a_request_debited_to_another_account_is_a_conflict(
    client: OdooClient, new_account: NewAccount
) -> None:
    owner, other = new_account(balance=100), new_account(balance=100)
    request_id = fresh_id("req")
    client.debit(owner, request_id, "samples", spec(), fresh_id("corr"))

    with pytest.raises(OdooRejected) as refused:
        client.debit(other, request_id, "samples", spec(), fresh_id("corr"))

    assert refused.value.code == "request_conflict"
    assert client.get_entitlements(other).balance == 100


def test_a_refund_returns_exactly_the_debit_once(
    client: OdooClient, new_account: NewAccount
) -> None:
    user = new_account(tier="pro", balance=100)
    request_id = fresh_id("req")
    debit = client.debit(user, request_id, "samples", spec(samples=2), fresh_id("corr"))

    refund = client.refund(request_id, "samples", "generation failed", fresh_id("corr"))
    again = client.refund(request_id, "samples", "generation failed", fresh_id("corr"))

    assert refund.replay is False
    assert (refund.user_id, refund.amount, refund.balance_after) == (user, debit.amount, 100)
    assert again.replay is True
    assert again.entry_id == refund.entry_id
    assert client.get_entitlements(user).balance == 100
    entries = client.ledger_by_requests([request_id])
    assert [(e.operation, e.amount) for e in entries] == [
        ("debit", debit.amount),
        ("refund", debit.amount),
    ]
    assert entries[1].reason == "generation failed"


def test_a_refunded_action_is_not_debited_again(
    client: OdooClient, new_account: NewAccount
) -> None:
    user = new_account(tier="pro", balance=100)
    request_id = fresh_id("req")
    debit = client.debit(user, request_id, "samples", spec(samples=2), fresh_id("corr"))
    client.refund(request_id, "samples", "platform failure", fresh_id("corr"))

    again = client.debit(user, request_id, "samples", spec(samples=2), fresh_id("corr"))

    assert again.replay is True
    assert again.entry_id == debit.entry_id
    assert client.get_entitlements(user).balance == 100


def test_a_refund_with_nothing_debited_is_refused(client: OdooClient) -> None:
    with pytest.raises(OdooRejected) as refused:
        client.refund(fresh_id("req"), "samples", "nothing there", fresh_id("corr"))

    assert refused.value.code == "nothing_to_refund"
    assert refused.value.status_code == 409


def test_ledger_by_requests_returns_only_those_requests_ordered_by_id(
    client: OdooClient, new_account: NewAccount
) -> None:
    user = new_account(tier="pro", balance=100)
    first, second, untouched = fresh_id("req"), fresh_id("req"), fresh_id("req")
    a = client.debit(user, first, "samples", spec(), fresh_id("corr"))
    b = client.debit(user, second, "samples", spec(), fresh_id("corr"))
    c = client.refund(first, "samples", "failed", fresh_id("corr"))
    client.debit(user, fresh_id("req"), "samples", spec(), fresh_id("corr"))

    entries = client.ledger_by_requests([second, first, untouched])

    assert [entry.id for entry in entries] == sorted([a.entry_id, b.entry_id, c.entry_id])
    assert {entry.request_id for entry in entries} == {first, second}
    assert all(entry.user_id == user for entry in entries)
    assert client.ledger_by_requests([untouched]) == ()
    assert client.ledger_by_requests([]) == ()


def test_ledger_by_requests_batches_more_ids_than_one_call_takes(
    client: OdooClient, new_account: NewAccount
) -> None:
    user = new_account(tier="pro", balance=100)
    request_id = fresh_id("req")
    debit = client.debit(user, request_id, "samples", spec(), fresh_id("corr"))
    many = [fresh_id("req") for _ in range(1200)] + [request_id]

    entries = client.ledger_by_requests(many)

    assert [entry.id for entry in entries] == [debit.entry_id]


def _created(entry_created_at: str) -> datetime:
    return datetime.strptime(entry_created_at, "%Y-%m-%d %H:%M:%S")


def test_ledger_window_pages_through_entries_in_a_time_window(
    client: OdooClient, new_account: NewAccount
) -> None:
    user = new_account(tier="pro", balance=100)
    ids = [fresh_id("req"), fresh_id("req")]
    receipts = [client.debit(user, rid, "samples", spec(), fresh_id("corr")) for rid in ids]
    ours = client.ledger_by_requests(ids)
    since = min(_created(e.created_at) for e in ours)
    until = max(_created(e.created_at) for e in ours) + timedelta(seconds=1)

    first_page = client.ledger_window(since, until, limit=1)
    collected: list[LedgerEntry] = []
    offset, has_more = 0, True
    while has_more:
        page = client.ledger_window(since, until, limit=50, offset=offset)
        collected.extend(page.entries)
        offset, has_more = offset + len(page.entries), page.has_more

    assert len(first_page.entries) == 1
    assert first_page.has_more is True
    window_ids = [entry.id for entry in collected]
    assert window_ids == sorted(window_ids)
    assert {r.entry_id for r in receipts} <= set(window_ids)
    assert all(since <= _created(entry.created_at) < until for entry in collected)


def test_ledger_window_excludes_its_end(client: OdooClient, new_account: NewAccount) -> None:
    user = new_account(tier="pro", balance=100)
    request_id = fresh_id("req")
    receipt = client.debit(user, request_id, "samples", spec(), fresh_id("corr"))
    (entry,) = client.ledger_by_requests([request_id])
    created = _created(entry.created_at)

    before = client.ledger_window(created - timedelta(minutes=5), created, limit=1000)
    around = client.ledger_window(created, created + timedelta(seconds=1), limit=1000)

    assert receipt.entry_id not in {e.id for e in before.entries}
    assert receipt.entry_id in {e.id for e in around.entries}


# -- the tier's cap on unfinished requests (spec.requests_in_flight) --------------------------


def test_at_the_cap_of_unfinished_requests_a_new_request_is_refused_with_the_figures(
    client: OdooClient, new_account: NewAccount
) -> None:
    user = new_account(tier="pro", balance=100)
    cap = client.get_entitlements(user).limits.max_requests_in_flight
    request_id = fresh_id("req")

    with pytest.raises(OdooRejected) as refused:
        client.debit(user, request_id, "samples", spec(requests_in_flight=cap), fresh_id("corr"))

    assert refused.value.code == "tier_forbids"
    assert refused.value.figures["reason"] == "too_many_requests_in_flight"
    assert refused.value.figures["tier"] == "pro"
    assert refused.value.figures["requests_in_flight"] == cap
    assert refused.value.figures["max_requests_in_flight"] == cap
    assert refused.value.status_code == 429
    assert client.ledger_by_requests([request_id]) == ()
    assert client.get_entitlements(user).balance == 100


def test_beyond_the_cap_the_figures_say_how_many_are_unfinished(
    client: OdooClient, new_account: NewAccount
) -> None:
    user = new_account(tier="pro", balance=100)
    cap = client.get_entitlements(user).limits.max_requests_in_flight

    with pytest.raises(OdooRejected) as refused:
        client.debit(
            user, fresh_id("req"), "samples", spec(requests_in_flight=cap + 5), fresh_id("corr")
        )

    assert refused.value.figures["requests_in_flight"] == cap + 5
    assert refused.value.figures["max_requests_in_flight"] == cap


def test_one_below_the_cap_a_new_request_is_debited(
    client: OdooClient, new_account: NewAccount
) -> None:
    user = new_account(tier="pro", balance=100)
    entitlements = client.get_entitlements(user)
    cap = entitlements.limits.max_requests_in_flight

    receipt = client.debit(
        user, fresh_id("req"), "samples", spec(2, requests_in_flight=cap - 1), fresh_id("corr")
    )

    assert receipt.replay is False
    assert receipt.amount == 2 * entitlements.prices.sample


def test_without_the_key_the_cap_is_not_checked(
    client: OdooClient, new_account: NewAccount
) -> None:
    user = new_account(tier="free", balance=100)
    cap = client.get_entitlements(user).limits.max_requests_in_flight
    with pytest.raises(OdooRejected):
        client.debit(user, fresh_id("req"), "samples", spec(requests_in_flight=cap), "")

    receipt = client.debit(user, fresh_id("req"), "samples", spec(), fresh_id("corr"))

    assert "requests_in_flight" not in spec().as_odoo_spec()
    assert receipt.replay is False


@pytest.mark.parametrize("action", ["final", "final-2", "regeneration-1"])
def test_the_cap_applies_to_new_requests_only(
    client: OdooClient, new_account: NewAccount, action: str
) -> None:
    user = new_account(tier="free", balance=100)
    cap = client.get_entitlements(user).limits.max_requests_in_flight

    receipt = client.debit(
        user, fresh_id("req"), action, spec(requests_in_flight=cap + 3), fresh_id("corr")
    )

    assert receipt.replay is False


def test_the_cap_is_the_last_tier_rule_and_comes_before_the_balance(
    client: OdooClient, new_account: NewAccount
) -> None:
    poor, free = _free_tier(client, new_account, balance=0)
    cap = free.limits.max_requests_in_flight
    if ADVANCED in free.limits.models:
        pytest.skip("the target's free tier allows the advanced model")

    with pytest.raises(OdooRejected) as advanced:
        client.debit(
            poor,
            fresh_id("req"),
            "samples",
            spec(model=ADVANCED, requests_in_flight=cap),
            fresh_id("corr"),
        )
    with pytest.raises(OdooRejected) as capped:
        client.debit(poor, fresh_id("req"), "samples", spec(requests_in_flight=cap), "")

    assert advanced.value.figures["reason"] == "model_not_allowed"
    assert "requests_in_flight" not in advanced.value.figures
    assert (capped.value.code, capped.value.figures["reason"]) == (
        "tier_forbids",
        "too_many_requests_in_flight",
    )


def test_a_replayed_debit_replays_whatever_the_requests_in_flight(
    client: OdooClient, new_account: NewAccount
) -> None:
    user = new_account(tier="pro", balance=100)
    cap = client.get_entitlements(user).limits.max_requests_in_flight
    request_id = fresh_id("req")
    first = client.debit(user, request_id, "samples", spec(requests_in_flight=0), "")

    again = client.debit(user, request_id, "samples", spec(requests_in_flight=cap + 1), "")

    assert again.replay is True
    assert again.entry_id == first.entry_id


@pytest.mark.parametrize("bad", [-1, "3", 2.0, True, None])
def test_a_requests_in_flight_that_is_not_a_count_is_an_invalid_request(
    client: OdooClient, new_account: NewAccount, bad: object
) -> None:
    user = new_account(tier="pro", balance=100)
    raw_spec = {**spec().as_odoo_spec(), "requests_in_flight": bad}
    if bad is None and client.config.protocol == "xmlrpc":
        pytest.skip("XML-RPC cannot carry None")

    result = client.call(SERVICE, "debit", user, fresh_id("req"), "samples", raw_spec, False)

    assert result["ok"] is False
    assert result["code"] == "invalid_request"
    assert "requests_in_flight" in result["detail"]
    assert client.get_entitlements(user).balance == 100

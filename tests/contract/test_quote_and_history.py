"""``quote`` and ``ledger_for_user`` through the adapter, on every protocol."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from creativeflow.adapters.odoo import OdooClient, OdooRejected
from creativeflow.domain.credits import LedgerPage
from tests.tier_rules import TIER

from .conftest import fresh_id, spec

NewAccount = Callable[..., str]


def test_a_quote_prices_each_step_and_writes_nothing(
    client: OdooClient, new_account: NewAccount
) -> None:
    user = new_account(tier=TIER.code, balance=500)

    quote = client.quote(user, spec(samples=3, width=1024, height=1024))

    assert (quote.user_id, quote.tier_code) == (user, TIER.code)
    assert (quote.allowed, quote.reason, quote.figures) == (True, None, {})
    assert (quote.prices.samples, quote.prices.final, quote.prices.regeneration) == (
        3 * TIER.price_per_sample,
        TIER.price_final_asset,
        3 * TIER.price_per_regeneration_sample,
    )
    assert (quote.balance, quote.affordable) == (500, True)
    assert client.ledger_for_user(user).entries == ()
    assert client.get_entitlements(user).balance == 500


def test_a_quote_gives_the_tier_rule_a_debit_would_break(
    client: OdooClient, new_account: NewAccount
) -> None:
    user = new_account(tier=TIER.code, balance=500)

    format_refused = client.quote(user, spec(fmt="gif", width=9999))
    capped = client.quote(user, spec(requests_in_flight=TIER.max_requests_in_flight))

    assert (format_refused.allowed, format_refused.reason) == (False, "format_not_allowed")
    assert (capped.allowed, capped.reason) == (False, "too_many_requests_in_flight")
    assert capped.figures == {
        "requests_in_flight": TIER.max_requests_in_flight,
        "max_requests_in_flight": TIER.max_requests_in_flight,
    }


def test_a_quote_says_when_the_balance_does_not_cover_the_samples(
    client: OdooClient, new_account: NewAccount
) -> None:
    user = new_account(tier=TIER.code, balance=1)

    quote = client.quote(user, spec(samples=2))

    assert (quote.allowed, quote.affordable, quote.balance) == (True, False, 1)


def test_a_quote_for_an_unknown_user_or_a_bad_spec_is_refused(
    client: OdooClient, new_account: NewAccount
) -> None:
    with pytest.raises(OdooRejected) as unknown:
        client.quote(fresh_id("nobody"), spec())
    with pytest.raises(OdooRejected) as invalid:
        client.quote(new_account(), spec(samples=0))

    assert unknown.value.code == "unknown_account"
    assert invalid.value.code == "invalid_request"


def test_the_history_is_the_users_own_entries_newest_first_a_page_at_a_time(
    client: OdooClient, new_account: NewAccount
) -> None:
    user, other = new_account(balance=100), new_account(balance=100)
    requests = [fresh_id("req") for _ in range(3)]
    for request_id in requests:
        client.debit(user, request_id, "samples", spec(), fresh_id("corr"))
    client.debit(other, fresh_id("req"), "samples", spec(), fresh_id("corr"))
    client.refund(requests[0], "samples", "dispatch_failed", fresh_id("corr"))

    first: LedgerPage = client.ledger_for_user(user, limit=2)
    rest = client.ledger_for_user(user, limit=2, offset=2)

    newest = [(e.request_id, e.operation) for e in (*first.entries, *rest.entries)]
    assert newest == [
        (requests[0], "refund"),
        (requests[2], "debit"),
        (requests[1], "debit"),
        (requests[0], "debit"),
    ]
    assert (first.has_more, rest.has_more) == (True, False)
    assert {e.user_id for e in (*first.entries, *rest.entries)} == {user}
    assert first.entries[0].reason == "dispatch_failed"


@pytest.mark.parametrize(("limit", "offset"), [(0, 0), (101, 0), (20, -1)])
def test_the_history_refuses_a_page_out_of_range(
    client: OdooClient, new_account: NewAccount, limit: int, offset: int
) -> None:
    with pytest.raises(OdooRejected) as refused:
        client.ledger_for_user(new_account(), limit=limit, offset=offset)
    assert refused.value.code == "invalid_request"


def test_the_history_of_an_unknown_user_is_refused(client: OdooClient) -> None:
    with pytest.raises(OdooRejected) as refused:
        client.ledger_for_user(fresh_id("nobody"))
    assert refused.value.code == "unknown_account"

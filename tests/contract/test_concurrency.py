"""Concurrent debits, each thread with its own client: Odoo's row lock keeps the balance honest."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from creativeflow.adapters.odoo import OdooClient, OdooConfig, OdooRejected
from creativeflow.domain.credits import CreditReceipt

from .conftest import fresh_id, spec

THREADS = 20


def _run_in_threads(
    make_config: Callable[..., OdooConfig],
    work: Callable[[OdooClient, int], CreditReceipt],
) -> list[CreditReceipt | OdooRejected]:
    """Run ``work`` in THREADS threads at once, each with a client of its own."""
    barrier = threading.Barrier(THREADS)

    def one_thread(index: int) -> CreditReceipt | OdooRejected:
        with OdooClient(make_config()) as client:
            client.authenticate()  # log in before the barrier, so the debits really race
            barrier.wait(timeout=60)
            try:
                return work(client, index)
            except OdooRejected as refused:
                return refused

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        return list(pool.map(one_thread, range(THREADS)))


def test_twenty_threads_never_overdraw_one_account(
    make_config: Callable[..., OdooConfig], client: OdooClient, new_account: Callable[..., str]
) -> None:
    balance = 25
    user = new_account(tier="pro", balance=balance)
    price = client.get_entitlements(user).prices.sample
    request_ids = [fresh_id("req") for _ in range(THREADS)]

    outcomes = _run_in_threads(
        make_config,
        lambda c, i: c.debit(user, request_ids[i], "samples", spec(samples=1), fresh_id("corr")),
    )

    receipts = [o for o in outcomes if isinstance(o, CreditReceipt)]
    refusals = [o for o in outcomes if isinstance(o, OdooRejected)]
    expected = balance // price
    assert len(receipts) == expected
    assert {r.code for r in refusals} == ({"insufficient_credits"} if expected < THREADS else set())
    assert all(r.replay is False for r in receipts)
    assert len({r.entry_id for r in receipts}) == expected
    assert sorted(r.balance_after for r in receipts) == [
        balance - price * n for n in range(expected, 0, -1)
    ]
    final_balance = client.get_entitlements(user).balance
    assert final_balance == balance - expected * price >= 0
    entries = client.ledger_by_requests(request_ids)
    assert len(entries) == expected
    assert len({entry.request_id for entry in entries}) == expected


def test_twenty_threads_debiting_one_request_charge_it_once(
    make_config: Callable[..., OdooConfig], client: OdooClient, new_account: Callable[..., str]
) -> None:
    user = new_account(tier="pro", balance=100)
    request_id = fresh_id("req")

    outcomes = _run_in_threads(
        make_config,
        lambda c, _i: c.debit(user, request_id, "samples", spec(samples=2), fresh_id("corr")),
    )

    receipts = [o for o in outcomes if isinstance(o, CreditReceipt)]
    assert len(receipts) == THREADS
    assert sum(1 for r in receipts if not r.replay) == 1
    assert len({r.entry_id for r in receipts}) == 1
    assert client.get_entitlements(user).balance == 100 - receipts[0].amount
    assert len(client.ledger_by_requests([request_id])) == 1

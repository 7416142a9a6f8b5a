"""``AsyncOdooCredits``: the async face the use cases await, with several calls in flight."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from creativeflow.adapters.odoo import AsyncOdooCredits, OdooConfig, OdooRejected
from creativeflow.domain.generated_assets import GeneratedAsset
from creativeflow.services.ports import CreditLedger

from .conftest import fresh_id, spec


def test_concurrent_async_calls_follow_the_contract(
    make_config: Callable[..., OdooConfig], new_account: Callable[..., str]
) -> None:
    balance = 100
    user = new_account(tier="pro", balance=balance)
    request_ids = [fresh_id("req") for _ in range(10)]
    credits = AsyncOdooCredits(make_config(), max_workers=4)
    port: CreditLedger = credits

    async def scenario() -> None:
        price = (await port.get_entitlements(user)).prices.sample
        debits = await asyncio.gather(
            *(port.debit(user, rid, "samples", spec(), fresh_id("corr")) for rid in request_ids),
            port.debit(user, request_ids[0], "samples", spec(), fresh_id("corr")),
        )
        assert sum(1 for receipt in debits if not receipt.replay) == len(request_ids)
        assert len({receipt.entry_id for receipt in debits}) == len(request_ids)

        refunds = await asyncio.gather(
            port.refund(request_ids[0], "samples", "failed", fresh_id("corr")),
            port.refund(request_ids[1], "samples", "failed", fresh_id("corr")),
        )
        assert [refund.amount for refund in refunds] == [price, price]
        with pytest.raises(OdooRejected):
            await port.refund(fresh_id("req"), "samples", "nothing", fresh_id("corr"))

        entitlements = await port.get_entitlements(user)
        assert entitlements.balance == balance - (len(request_ids) - 2) * price
        entries = await port.ledger_by_requests(request_ids)
        assert len(entries) == len(request_ids) + 2
        newest = max(datetime.strptime(e.created_at, "%Y-%m-%d %H:%M:%S") for e in entries)
        page = await port.ledger_window(
            newest - timedelta(minutes=1), newest + timedelta(seconds=1), limit=1000
        )
        assert {entry.id for entry in entries} <= {entry.id for entry in page.entries}
        assert await credits.ping() is True

    try:
        asyncio.run(scenario())
        assert 1 <= credits.client_count <= 4
    finally:
        credits.close()


def test_a_closed_async_face_refuses_calls(make_config: Callable[..., OdooConfig]) -> None:
    credits = AsyncOdooCredits(make_config(), max_workers=1)
    credits.close()

    with pytest.raises(RuntimeError):
        asyncio.run(credits.get_entitlements(fresh_id("user")))


def test_ping_is_false_when_odoo_is_unreachable(make_config: Callable[..., OdooConfig]) -> None:
    credits = AsyncOdooCredits(
        make_config(url="http://127.0.0.1:9", connect_timeout=0.5), max_workers=1
    )
    try:
        assert asyncio.run(credits.ping()) is False
    finally:
        credits.close()


def test_concurrent_recordings_of_one_asset_create_it_once(
    make_config: Callable[..., OdooConfig], new_account: Callable[..., str]
) -> None:
    user = new_account(tier="pro", balance=100)
    request_id = fresh_id("req")
    credits = AsyncOdooCredits(make_config(), max_workers=4)
    port: CreditLedger = credits
    asset = GeneratedAsset(
        request_id=request_id,
        user_id=user,
        storage_key=f"assets/{request_id}.png",
        format="png",
        width=512,
        height=512,
        checksum_sha256="c" * 64,
        byte_size=4096,
        debit_actions=("samples", "final"),
    )

    async def scenario() -> None:
        for action in ("samples", "final"):
            await port.debit(user, request_id, action, spec(), fresh_id("corr"))
        recorded = await asyncio.gather(*(port.record_generated_asset(asset) for _ in range(8)))
        assert sum(1 for record in recorded if record.created) == 1
        assert len({record.odoo_id for record in recorded}) == 1
        assert {record.ledger_entry_ids for record in recorded} == {
            tuple(sorted(e.id for e in await port.ledger_by_requests([request_id])))
        }

    try:
        asyncio.run(scenario())
    finally:
        credits.close()

"""Round-trip budgets, counted by the emulator: one HTTP request per debit, one login per client."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from creativeflow.adapters.odoo import AsyncOdooCredits, OdooClient, OdooConfig
from creativeflow.adapters.odoo.config import RpcProtocol

from .conftest import DEBIT, fresh_id, spec

LOGIN = "common.login"
# What logging in costs on the wire: odoorpc also asks /web/webclient/version_info when it
# connects and calls res.users.context_get after common.login.
LOGIN_REQUESTS: dict[RpcProtocol, int] = {"xmlrpc": 1, "jsonrpc": 3}


def test_a_debit_costs_one_http_request_after_login(
    emulator: Any, client: OdooClient, new_account: Callable[..., str]
) -> None:
    user = new_account(tier="pro", balance=100)
    client.authenticate()
    emulator.reset_counters()

    client.debit(user, fresh_id("req"), "samples", spec(), fresh_id("corr"))

    assert emulator.request_count() == 1
    assert emulator.request_count(model_method=DEBIT) == 1


def test_a_client_logs_in_once_for_all_its_calls(
    emulator: Any,
    make_client: Callable[..., OdooClient],
    new_account: Callable[..., str],
    protocol: RpcProtocol,
) -> None:
    user = new_account(tier="pro", balance=100)
    client = make_client()
    emulator.reset_counters()

    request_id = fresh_id("req")
    client.get_entitlements(user)
    client.debit(user, request_id, "samples", spec(), fresh_id("corr"))
    client.debit(user, fresh_id("req"), "samples", spec(), fresh_id("corr"))
    client.refund(request_id, "samples", "failed", fresh_id("corr"))
    client.ledger_by_requests([request_id])

    assert emulator.request_count(service_method=LOGIN) == 1
    assert emulator.request_count() == LOGIN_REQUESTS[protocol] + 5


def test_each_thread_logs_in_once_with_its_own_client(
    emulator: Any, make_config: Callable[..., OdooConfig], new_account: Callable[..., str]
) -> None:
    user = new_account(tier="pro", balance=100)
    threads, calls_per_thread = 4, 3
    emulator.reset_counters()

    def work() -> None:
        with OdooClient(make_config()) as client:
            for _ in range(calls_per_thread):
                client.debit(user, fresh_id("req"), "samples", spec(), fresh_id("corr"))

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)

    assert emulator.request_count(service_method=LOGIN) == threads
    assert emulator.request_count(model_method=DEBIT) == threads * calls_per_thread


def test_the_async_face_logs_in_once_per_worker_thread_not_per_call(
    emulator: Any, make_config: Callable[..., OdooConfig], new_account: Callable[..., str]
) -> None:
    user = new_account(tier="pro", balance=100)
    calls, workers = 12, 3
    credits = AsyncOdooCredits(make_config(), max_workers=workers)
    emulator.reset_counters()

    async def many_calls() -> None:
        await asyncio.gather(*(credits.get_entitlements(user) for _ in range(calls)))
        await asyncio.gather(*(credits.get_entitlements(user) for _ in range(calls)))

    try:
        asyncio.run(many_calls())
        logins = emulator.request_count(service_method=LOGIN)
        assert logins == credits.client_count
        assert 1 <= logins <= workers
        assert (
            emulator.request_count(model_method="creativeflow.credit.service.get_entitlements")
            == 2 * calls
        )
    finally:
        credits.close()

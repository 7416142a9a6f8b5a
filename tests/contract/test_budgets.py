"""Round-trip budgets, counted by the emulator: one HTTP request per debit, one login per client
over XML-RPC and JSON-RPC, and none at all over JSON-2.

The exact counts per protocol:

    protocol  logging in (once per client)                                   a debit
    xmlrpc    1 request: common.login                                        1 request
    jsonrpc   3 requests: /web/webclient/version_info, common.login,         1 request
              res.users.context_get (odoorpc)
    json2     0 requests: every request carries the API key; authenticate()  1 request
              is optional and costs 1 (res.users/context_get)
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest

from creativeflow.adapters.odoo import AsyncOdooCredits, OdooClient, OdooConfig
from creativeflow.adapters.odoo.config import RpcProtocol

from .conftest import DEBIT, SERVICE, fresh_id, spec

LOGIN = "common.login"
# What logging in costs on the wire, in HTTP requests and in common.login calls.
LOGIN_REQUESTS: dict[RpcProtocol, int] = {"xmlrpc": 1, "jsonrpc": 3, "json2": 0}
LOGIN_CALLS: dict[RpcProtocol, int] = {"xmlrpc": 1, "jsonrpc": 1, "json2": 0}
JSON2_DEBIT_PATH = f"/json/2/{SERVICE}/debit"


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

    assert emulator.request_count(service_method=LOGIN) == LOGIN_CALLS[protocol]
    assert emulator.request_count() == LOGIN_REQUESTS[protocol] + 5


@pytest.mark.parametrize("protocol", ["json2"])
def test_json2_a_new_client_debits_in_one_request_without_logging_in(
    emulator: Any, make_client: Callable[..., OdooClient], new_account: Callable[..., str]
) -> None:
    user = new_account(tier="pro", balance=100)
    client = make_client()
    emulator.reset_counters()

    receipt = client.debit(user, fresh_id("req"), "samples", spec(), fresh_id("corr"))

    assert receipt.replay is False
    assert emulator.request_count() == 1
    assert emulator.request_count(path=JSON2_DEBIT_PATH, model_method=DEBIT) == 1
    assert client.uid is None  # nothing asked who the key belongs to


@pytest.mark.parametrize("protocol", ["json2"])
def test_json2_authenticate_costs_one_request_and_calls_still_one_each(
    emulator: Any, make_client: Callable[..., OdooClient], new_account: Callable[..., str]
) -> None:
    user = new_account(tier="pro", balance=100)
    client = make_client()
    emulator.reset_counters()

    uid = client.authenticate()
    client.authenticate()
    client.debit(user, fresh_id("req"), "samples", spec(), fresh_id("corr"))

    assert uid > 0
    assert emulator.request_count(model_method="res.users.context_get") == 1
    assert emulator.request_count() == 2


def test_each_thread_logs_in_once_with_its_own_client(
    emulator: Any,
    make_config: Callable[..., OdooConfig],
    new_account: Callable[..., str],
    protocol: RpcProtocol,
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

    assert emulator.request_count(service_method=LOGIN) == threads * LOGIN_CALLS[protocol]
    assert emulator.request_count(model_method=DEBIT) == threads * calls_per_thread
    assert emulator.request_count() == threads * (LOGIN_REQUESTS[protocol] + calls_per_thread)


def test_the_async_face_logs_in_once_per_worker_thread_not_per_call(
    emulator: Any,
    make_config: Callable[..., OdooConfig],
    new_account: Callable[..., str],
    protocol: RpcProtocol,
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
        assert 1 <= credits.client_count <= workers
        assert logins == credits.client_count * LOGIN_CALLS[protocol]
        assert (
            emulator.request_count(model_method="creativeflow.credit.service.get_entitlements")
            == 2 * calls
        )
        assert emulator.request_count() == (
            credits.client_count * LOGIN_REQUESTS[protocol] + 2 * calls
        )
    finally:
        credits.close()

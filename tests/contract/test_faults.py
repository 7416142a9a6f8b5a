"""Transport faults and what the adapter makes of them, produced for real over the wire.

"Never reached Odoo" must end as ``OdooUnavailable`` (nothing charged); "sent, no reply" of a debit
or refund as ``OdooOutcomeUnknown``, settled afterwards by a replay or the ledger.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from creativeflow.adapters.odoo import (
    OdooClient,
    OdooOutcomeUnknown,
    OdooServerError,
    OdooUnavailable,
)
from creativeflow.adapters.odoo.client import make_transport
from creativeflow.adapters.odoo.config import RpcProtocol
from creativeflow.adapters.odoo.transport import RpcTransport
from creativeflow.domain.errors import CreditOutcomeUnknown

from .conftest import DEBIT, SERVICE, fresh_id, spec
from .gateway import GatewayStub

MakeClient = Callable[..., OdooClient]
NewAccount = Callable[..., str]


class CountingTransport:
    """Wraps a real transport and counts the tries that reach it."""

    def __init__(self, inner: RpcTransport) -> None:
        self._inner = inner
        self.logins = 0
        self.calls = 0

    @property
    def needs_login(self) -> bool:
        return self._inner.needs_login

    def version(self) -> Any:
        return self._inner.version()

    def login(self) -> int | None:
        self.logins += 1
        return self._inner.login()

    def execute_kw(self, model: str, method: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        self.calls += 1
        return self._inner.execute_kw(model, method, args, kwargs)

    def close(self) -> None:
        self._inner.close()


def _wait_for_balance(client: OdooClient, user: str, expected: int) -> int:
    """The balance once it reaches ``expected``, or whatever it is after 10 s."""
    deadline = time.monotonic() + 10
    balance = client.get_entitlements(user).balance
    while balance != expected and time.monotonic() < deadline:
        time.sleep(0.05)
        balance = client.get_entitlements(user).balance
    return balance


# -- Odoo refusing connections ----------------------------------------------------------------


def test_refused_connections_are_retried_then_unavailable(
    emulator: Any, make_config: Callable[..., Any], new_account: NewAccount, client: OdooClient
) -> None:
    user = new_account(tier="pro", balance=100)
    config = make_config(max_attempts=3, backoff_base=0.2, backoff_max=0.3)
    transport = CountingTransport(make_transport(config))
    sleeps: list[float] = []
    refused = OdooClient(config, transport=transport, sleep=sleeps.append)
    refused.authenticate()
    request_id = fresh_id("req")

    emulator.faults.refuse_connections(True)
    try:
        with pytest.raises(OdooUnavailable) as failed:
            refused.debit(user, request_id, "samples", spec(), fresh_id("corr"))
    finally:
        emulator.faults.refuse_connections(False)

    assert not isinstance(failed.value, CreditOutcomeUnknown)
    assert transport.calls == 3
    assert len(sleeps) == 2
    assert 0 <= sleeps[0] <= 0.2 and 0 <= sleeps[1] <= 0.3
    assert client.get_entitlements(user).balance == 100
    assert client.ledger_by_requests([request_id]) == ()


def test_refused_connections_at_login_are_retried_then_unavailable(
    emulator: Any, make_config: Callable[..., Any], protocol: RpcProtocol
) -> None:
    config = make_config(max_attempts=4)
    transport = CountingTransport(make_transport(config))
    sleeps: list[float] = []
    client = OdooClient(config, transport=transport, sleep=sleeps.append)

    emulator.faults.refuse_connections(True)
    try:
        with pytest.raises(OdooUnavailable) as failed:
            client.get_entitlements(fresh_id("user"))
    finally:
        emulator.faults.refuse_connections(False)

    assert not isinstance(failed.value, CreditOutcomeUnknown)
    if protocol == "json2":  # no login: each try is the call itself
        assert (transport.logins, transport.calls, len(sleeps)) == (0, 4, 3)
    else:
        assert (transport.logins, transport.calls, len(sleeps)) == (4, 0, 3)


def test_a_client_recovers_once_connections_are_accepted_again(
    emulator: Any, make_client: MakeClient, new_account: NewAccount
) -> None:
    user = new_account(tier="pro", balance=100)
    switches: list[bool] = []

    def sleep_then_reopen(_delay: float) -> None:
        switches.append(False)
        emulator.faults.refuse_connections(False)

    client = make_client(max_attempts=2, sleep=sleep_then_reopen)
    emulator.faults.refuse_connections(True)

    receipt = client.debit(user, fresh_id("req"), "samples", spec(), fresh_id("corr"))

    assert switches == [False]
    assert receipt.replay is False


# -- applied, then the reply is lost ----------------------------------------------------------


def test_a_lost_debit_reply_is_an_outcome_unknown_then_a_replay(
    emulator: Any, make_client: MakeClient, new_account: NewAccount, client: OdooClient
) -> None:
    user = new_account(tier="pro", balance=100)
    request_id = fresh_id("req")
    once = make_client(max_attempts=1)
    emulator.faults.lose_reply_next(1, model_method=DEBIT)

    with pytest.raises(OdooOutcomeUnknown) as unknown:
        once.debit(user, request_id, "samples", spec(samples=2), fresh_id("corr"))

    assert isinstance(unknown.value, CreditOutcomeUnknown)
    (applied,) = client.ledger_by_requests([request_id])
    assert applied.operation == "debit"
    retried = once.debit(user, request_id, "samples", spec(samples=2), fresh_id("corr"))
    assert retried.replay is True
    assert retried.entry_id == applied.id
    assert client.get_entitlements(user).balance == 100 - applied.amount


def test_a_lost_debit_reply_is_retried_into_a_replay(
    emulator: Any, make_client: MakeClient, new_account: NewAccount
) -> None:
    user = new_account(tier="pro", balance=100)
    request_id = fresh_id("req")
    sleeps: list[float] = []
    client = make_client(max_attempts=3, sleep=sleeps.append)
    client.authenticate()
    emulator.reset_counters()
    emulator.faults.lose_reply_next(1, model_method=DEBIT)

    receipt = client.debit(user, request_id, "samples", spec(samples=2), fresh_id("corr"))

    assert receipt.replay is True
    assert emulator.request_count(model_method=DEBIT) == 2
    assert len(sleeps) == 1
    assert client.get_entitlements(user).balance == 100 - receipt.amount
    assert len(client.ledger_by_requests([request_id])) == 1


def test_every_reply_lost_ends_as_outcome_unknown_with_one_deduction(
    emulator: Any, make_client: MakeClient, new_account: NewAccount, client: OdooClient
) -> None:
    user = new_account(tier="pro", balance=100)
    request_id = fresh_id("req")
    retrying = make_client(max_attempts=3, sleep=lambda _s: None)
    emulator.faults.lose_reply_next(3, model_method=DEBIT)

    with pytest.raises(OdooOutcomeUnknown):
        retrying.debit(user, request_id, "samples", spec(samples=2), fresh_id("corr"))

    (entry,) = client.ledger_by_requests([request_id])
    assert client.get_entitlements(user).balance == 100 - entry.amount


def test_a_lost_refund_reply_is_an_outcome_unknown_then_a_replay(
    emulator: Any, make_client: MakeClient, new_account: NewAccount, client: OdooClient
) -> None:
    user = new_account(tier="pro", balance=100)
    request_id = fresh_id("req")
    client.debit(user, request_id, "samples", spec(samples=2), fresh_id("corr"))
    once = make_client(max_attempts=1)
    emulator.faults.lose_reply_next(1, model_method=f"{SERVICE}.refund")

    with pytest.raises(OdooOutcomeUnknown):
        once.refund(request_id, "samples", "failed", fresh_id("corr"))

    assert client.get_entitlements(user).balance == 100
    assert once.refund(request_id, "samples", "failed", fresh_id("corr")).replay is True


def test_a_lost_read_reply_is_unavailable_not_outcome_unknown(
    emulator: Any, make_client: MakeClient, new_account: NewAccount
) -> None:
    user = new_account(tier="pro", balance=100)
    client = make_client(max_attempts=1)
    emulator.faults.lose_reply_next(1, model_method=f"{SERVICE}.get_entitlements")

    with pytest.raises(OdooUnavailable) as failed:
        client.get_entitlements(user)

    assert not isinstance(failed.value, CreditOutcomeUnknown)


def test_a_read_timeout_on_a_debit_is_an_outcome_unknown(
    emulator: Any, make_client: MakeClient, new_account: NewAccount, client: OdooClient
) -> None:
    user = new_account(tier="pro", balance=100)
    price = client.get_entitlements(user).prices.sample
    request_id = fresh_id("req")
    slow = make_client(max_attempts=1, read_timeout=0.2)
    slow.authenticate()
    emulator.faults.latency = 1.0

    try:
        with pytest.raises(OdooOutcomeUnknown):
            slow.debit(user, request_id, "samples", spec(samples=2), fresh_id("corr"))
    finally:
        emulator.faults.latency = 0

    # Odoo finishes the call the client gave up on: exactly one deduction, then a replay.
    assert _wait_for_balance(client, user, 100 - 2 * price) == 100 - 2 * price
    assert client.debit(user, request_id, "samples", spec(samples=2), "").replay is True


# -- Odoo answers a fault ---------------------------------------------------------------------


def test_a_server_fault_is_not_retried_and_charges_nothing(
    emulator: Any, make_client: MakeClient, new_account: NewAccount
) -> None:
    user = new_account(tier="pro", balance=100)
    request_id = fresh_id("req")
    sleeps: list[float] = []
    client = make_client(max_attempts=3, sleep=sleeps.append)
    client.authenticate()
    emulator.reset_counters()
    emulator.faults.fail_next(1, model_method=DEBIT)

    with pytest.raises(OdooServerError) as failed:
        client.debit(user, request_id, "samples", spec(), fresh_id("corr"))

    assert isinstance(failed.value, OdooUnavailable)
    assert not isinstance(failed.value, CreditOutcomeUnknown)
    assert emulator.request_count(model_method=DEBIT) == 1
    assert sleeps == []
    assert client.get_entitlements(user).balance == 100


# -- a gateway in front of Odoo (runs against a real Odoo too) --------------------------------


def test_a_gateway_error_after_odoo_applied_the_debit_is_an_outcome_unknown(
    gateway: GatewayStub, make_client: MakeClient, new_account: NewAccount, client: OdooClient
) -> None:
    user = new_account(tier="pro", balance=100)
    request_id = fresh_id("req")
    behind = make_client(url=gateway.url, max_attempts=1)
    behind.authenticate()
    gateway.fail_next(1, marker=request_id, status=504, forward_first=True)

    with pytest.raises(OdooOutcomeUnknown):
        behind.debit(user, request_id, "samples", spec(samples=2), fresh_id("corr"))

    (applied,) = client.ledger_by_requests([request_id])
    assert behind.debit(user, request_id, "samples", spec(samples=2), "").entry_id == applied.id


def test_gateway_errors_on_a_read_are_retried_then_unavailable(
    gateway: GatewayStub, make_client: MakeClient, new_account: NewAccount
) -> None:
    user = new_account(tier="pro", balance=100)
    sleeps: list[float] = []
    behind = make_client(url=gateway.url, max_attempts=3, sleep=sleeps.append)
    behind.authenticate()
    gateway.fail_next(3, marker=user, status=503)

    with pytest.raises(OdooUnavailable) as failed:
        behind.get_entitlements(user)

    assert not isinstance(failed.value, CreditOutcomeUnknown)
    assert gateway.failed == 3
    assert len(sleeps) == 2
    assert behind.get_entitlements(user).balance == 100


def test_a_gateway_error_before_forwarding_a_debit_is_retried(
    gateway: GatewayStub, make_client: MakeClient, new_account: NewAccount
) -> None:
    user = new_account(tier="pro", balance=100)
    request_id = fresh_id("req")
    behind = make_client(url=gateway.url, max_attempts=3, sleep=lambda _s: None)
    behind.authenticate()
    gateway.fail_next(1, marker=request_id, status=502)

    receipt = behind.debit(user, request_id, "samples", spec(samples=2), fresh_id("corr"))

    assert receipt.replay is False
    assert gateway.failed == 1
    assert behind.get_entitlements(user).balance == 100 - receipt.amount

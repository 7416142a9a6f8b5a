"""Logging in, API keys, access faults and server faults, through the adapter.

JSON-2 has no login: the API key is checked on every request, ``authenticate`` only checks it and
learns its uid (``res.users/context_get``), and a password is refused like a wrong key.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from creativeflow.adapters.odoo import (
    OdooAccessError,
    OdooAuthenticationError,
    OdooClient,
    OdooServerError,
    OdooUnavailable,
)
from creativeflow.adapters.odoo.config import RpcProtocol
from creativeflow.domain.errors import CreditServiceUnavailable

from .conftest import SERVICE, Target, fresh_id, spec

MakeClient = Callable[..., OdooClient]


def test_authenticate_logs_in_once_and_keeps_the_uid(client: OdooClient) -> None:
    assert client.uid is None

    uid = client.authenticate()

    assert isinstance(uid, int) and uid > 0
    assert client.uid == uid
    assert client.authenticate() == uid


def test_a_wrong_password_is_an_authentication_error(make_client: MakeClient) -> None:
    client = make_client(secret=fresh_id("wrong-password"))

    with pytest.raises(OdooAuthenticationError) as failed:
        client.get_entitlements(fresh_id("user"))

    assert isinstance(failed.value, CreditServiceUnavailable)
    assert not isinstance(failed.value, OdooUnavailable)
    assert client.uid is None


def test_an_unknown_login_is_an_authentication_error(
    make_client: MakeClient, protocol: RpcProtocol
) -> None:
    if protocol == "json2":
        pytest.skip("JSON-2 sends no login: the API key alone names the user")
    with pytest.raises(OdooAuthenticationError):
        make_client(login=fresh_id("nobody")).authenticate()


def test_the_api_key_works_in_place_of_the_password(
    target: Target, make_client: MakeClient, new_account: Callable[..., str], protocol: RpcProtocol
) -> None:
    if protocol == "json2":
        pytest.skip("JSON-2 takes no password (see test_json2_takes_the_api_key_not_the_password)")
    secrets = target.password_and_api_key()
    if secrets is None:
        pytest.skip("set ODOO_CONTRACT_PASSWORD and ODOO_CONTRACT_API_KEY to compare both")
    password, api_key = secrets
    user = new_account(tier="pro", balance=100)
    with_password = make_client(secret=password)
    with_key = make_client(secret=api_key)

    assert with_key.authenticate() == with_password.authenticate()
    receipt = with_key.debit(user, fresh_id("req"), "samples", spec(), fresh_id("corr"))
    assert receipt.replay is False
    assert with_password.get_entitlements(user).balance == receipt.balance_after


@pytest.mark.parametrize("protocol", ["json2"])
def test_json2_takes_the_api_key_not_the_password(
    target: Target, make_client: MakeClient, new_account: Callable[..., str]
) -> None:
    secrets = target.password_and_api_key()
    if secrets is None:
        pytest.skip("set ODOO_CONTRACT_PASSWORD and ODOO_CONTRACT_API_KEY to compare both")
    password, api_key = secrets
    user = new_account(tier="pro", balance=100)
    with_key = make_client(secret=api_key)

    with pytest.raises(OdooAuthenticationError):
        make_client(secret=password).get_entitlements(user)
    with pytest.raises(OdooAuthenticationError):
        make_client(secret=password).authenticate()
    receipt = with_key.debit(user, fresh_id("req"), "samples", spec(), fresh_id("corr"))
    assert with_key.authenticate() > 0
    assert receipt.replay is False


def test_calling_a_private_method_is_an_access_error(client: OdooClient) -> None:
    with pytest.raises(OdooAccessError) as denied:
        client.call(SERVICE, "_post_debit", platform_user_id=fresh_id("user"))

    assert isinstance(denied.value, CreditServiceUnavailable)
    assert "private" in str(denied.value).lower()


def test_a_user_outside_the_orchestrator_group_gets_an_access_error(
    target: Target, make_client: MakeClient, new_account: Callable[..., str], protocol: RpcProtocol
) -> None:
    auditor = target.auditor(protocol)
    if auditor is None:
        pytest.skip("set ODOO_CONTRACT_AUDITOR_LOGIN and ODOO_CONTRACT_AUDITOR_SECRET")
    user = new_account(tier="pro", balance=100)
    client = make_client(login=auditor.login, secret=auditor.secret)

    with pytest.raises(OdooAccessError):
        client.debit(user, fresh_id("req"), "samples", spec(), fresh_id("corr"))
    with pytest.raises(OdooAccessError):
        client.get_entitlements(user)

    assert make_client().get_entitlements(user).balance == 100


def test_an_unknown_database_is_a_server_error(
    make_client: MakeClient, protocol: RpcProtocol
) -> None:
    sleeps: list[float] = []
    client = make_client(database=fresh_id("no-such-db"), sleep=sleeps.append)

    with pytest.raises(OdooUnavailable) as failed:
        client.authenticate()

    if protocol == "json2":
        # Odoo falls back to its database-less routes, where /json/2 does not exist: a bare 404
        # page, not an Odoo error body. A retry cannot cure it.
        assert "HTTP 404" in str(failed.value)
        assert sleeps == []
    else:
        assert isinstance(failed.value, OdooServerError)

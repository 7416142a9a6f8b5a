"""The password or API key never shows: not in logs (odoorpc's and httpx's DEBUG lines included),
not in an error message, not in a repr."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from creativeflow.adapters.odoo import OdooAuthenticationError, OdooClient, OdooRejected
from creativeflow.adapters.odoo.config import RpcProtocol

from .conftest import Target, fresh_id, spec


def test_no_log_line_carries_the_secret(
    caplog: pytest.LogCaptureFixture,
    target: Target,
    make_client: Callable[..., OdooClient],
    new_account: Callable[..., str],
    protocol: RpcProtocol,
) -> None:
    secrets = target.password_and_api_key()
    secret = secrets[1] if secrets else target.orchestrator.secret
    if secret in (target.orchestrator.login, target.database):
        pytest.skip("the secret equals the login or database name: it cannot be told apart")
    client = make_client(secret=secret)
    user = new_account(tier="pro", balance=1)
    caplog.set_level(logging.DEBUG)

    client.authenticate()
    with pytest.raises(OdooRejected):
        client.debit(user, fresh_id("req"), "samples", spec(samples=8), fresh_id("corr"))

    loggers = {record.name for record in caplog.records}
    assert "creativeflow.adapters.odoo.client" in loggers
    if protocol == "jsonrpc":
        assert "odoorpc.rpc.jsonrpclib" in loggers  # odoorpc logged its requests: and masked them
    if protocol == "json2":
        # httpx and httpcore logged each request (the key rides in a header of every one)
        assert {"httpx", "httpcore.http11"} <= loggers
    assert secret not in caplog.text


def test_a_refused_secret_shows_in_no_message_and_no_log(
    caplog: pytest.LogCaptureFixture, make_client: Callable[..., OdooClient]
) -> None:
    secret = fresh_id("wrong-secret")
    client = make_client(secret=secret)
    caplog.set_level(logging.DEBUG)

    with pytest.raises(OdooAuthenticationError) as failed:
        client.get_entitlements(fresh_id("user"))

    assert secret not in str(failed.value)
    assert secret not in repr(failed.value)
    assert secret not in caplog.text
    assert secret not in repr(client)
    assert secret not in repr(client.config)

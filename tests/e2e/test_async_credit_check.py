"""useSyncCreditCheck=false: the submit answers 202 PENDING at once; a background step debits
and dispatches, and the request moves on (or fails with Odoo's refusal code)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from creativeflow.api.app import create_app
from creativeflow_devstack.stack import serve_in_thread
from tests.e2e.conftest import GATEWAY_SECRET, Stack, free_port, wait_for_status
from tests.e2e.test_generation_flow import A_REQUEST


@pytest.fixture(scope="module")
def async_api(stack: Stack) -> Iterator[str]:
    settings = stack.settings.model_copy(update={"use_sync_credit_check": False})
    port = free_port()
    with serve_in_thread(create_app(settings), "127.0.0.1", port, "async-api"):
        yield f"http://127.0.0.1:{port}"


def client(api_url: str, user: str) -> httpx.Client:
    return httpx.Client(
        base_url=api_url,
        headers={"X-Gateway-Secret": GATEWAY_SECRET, "X-User-Id": user},
        timeout=30,
    )


def test_the_answer_is_pending_and_the_request_moves_on(stack: Stack, async_api: str) -> None:
    user = stack.new_user(balance=100)
    with client(async_api, user) as api:
        accepted = api.post("/api/v1/generations", json=A_REQUEST)
        assert accepted.status_code == 202
        assert accepted.json()["status"] == "PENDING"
        assert accepted.json()["model"] is None  # the plan's default, not known before the debit
        done = wait_for_status(api, accepted.json()["id"], "AWAITING_SELECTION")
    assert done["model"] == "creativeflow-standard-v1"  # the pro tier's default, as Odoo granted
    assert [h["status"] for h in done["history"]][:3] == [
        "PENDING",
        "VALIDATING_CREDITS",
        "PUBLISHING_TO_QUEUE",
    ]
    assert [e["operation"] for e in stack.ledger_for(done["id"])] == ["debit"]


def test_a_refusal_ends_the_pending_request_with_its_code(stack: Stack, async_api: str) -> None:
    user = stack.new_user(balance=1)
    with client(async_api, user) as api:
        accepted = api.post("/api/v1/generations", json=A_REQUEST)
        assert accepted.status_code == 202
        refused = wait_for_status(api, accepted.json()["id"], "REFUSED")
    # the user's history shows a refusal with its code, not a failure of the platform
    assert refused["failure"]["category"] == "credits_refused"
    assert refused["failure"]["code"] == "insufficient_credits"
    assert "Odoo" not in refused["failure"]["message"]
    assert refused["credits_charged"] == 0
    assert stack.ledger_of_user(user) == []

"""One correlation id follows a request everywhere: the API's answer, every log line of the
submit and of n8n's callbacks, Odoo's ledger entries, the job messages and the notifications."""

from __future__ import annotations

import logging
import uuid

import pytest

from creativeflow.logging_setup import CorrelationFilter
from tests.e2e.conftest import Stack, wait_for, wait_for_status
from tests.e2e.test_generation_flow import A_REQUEST


def test_one_id_finds_the_whole_story(stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    caplog.handler.addFilter(CorrelationFilter())
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="creativeflow.adapters.odoo")
    correlation_id = f"corr-{uuid.uuid4().hex}"
    user = stack.new_user(balance=100)
    with stack.client(user) as client:
        submitted = client.post(
            "/api/v1/generations",
            json={**A_REQUEST, "samples": 1},
            headers={"X-Request-ID": correlation_id},
        )
        assert submitted.headers["x-request-id"] == correlation_id
        request_id = submitted.json()["id"]
        wait_for_status(client, request_id, "AWAITING_SELECTION")
        client.post(f"/api/v1/generations/{request_id}/selection", json={"sample_id": "s1"})
        wait_for_status(client, request_id, "COMPLETED")
    wait_for(lambda: len(stack.notifications.find(request_id=request_id)) >= 2)

    ledger = stack.ledger_for(request_id)
    assert [e["correlation_id"] for e in ledger] == [correlation_id, correlation_id]
    jobs = [j for j in stack.jobs_published() if j["request_id"] == request_id]
    assert [j["correlation_id"] for j in jobs] == [correlation_id, correlation_id]
    notified = stack.notifications.find(request_id=request_id)
    assert {n.correlation_id for n in notified} == {correlation_id}

    ours = [r for r in caplog.records if getattr(r, "correlation_id", None) == correlation_id]
    messages = [r.getMessage() for r in ours]
    assert any("samples paid" in m for m in messages), messages
    assert any("final paid" in m for m in messages), messages
    assert any(m.startswith("callback samples_ready") for m in messages), messages
    assert any(m.startswith("callback final_ready") for m in messages), messages
    # the Odoo adapter logs its calls from its own threads, with the caller's id
    odoo_calls = [
        m
        for r, m in zip(ours, messages, strict=True)
        if r.name.startswith("creativeflow.adapters.odoo")
    ]
    assert any("debit" in m for m in odoo_calls), odoo_calls

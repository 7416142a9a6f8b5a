"""Cancelling a request whose job n8n is working on, on the whole stack: the stage is refunded in
Odoo, n8n (the simulator consuming the cancellation queue) drops the job, and a result that comes
anyway changes nothing."""

from __future__ import annotations

import json
import time
import uuid

from creativeflow.webhook_signature import signed_headers
from tests.e2e.conftest import CALLBACK_SECRET, Stack, wait_for, wait_for_status
from tests.e2e.test_generation_flow import submit


def test_cancel_while_samples_are_processing_refunds_them_and_n8n_drops_the_job(
    stack: Stack,
) -> None:
    user = stack.new_user(balance=50)
    cancelled_before = stack.simulator.stats().cancelled
    created = submit(stack, user, prompt="[wait:4] a lighthouse at dusk", samples=3)
    assert created["status"] == "PROCESSING_SAMPLES"
    with stack.client(user) as client:
        cancelled = client.post(f"/api/v1/generations/{created['id']}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        view = cancelled.json()
        assert view["status"] == "CANCELLED"
        assert view["charges"] == [
            {"action": "samples", "state": "refunded", "charged": 6, "refunded": 6}
        ]
        assert [(e["operation"], e["amount"]) for e in stack.ledger_for(created["id"])] == [
            ("debit", 6),
            ("refund", 6),
        ]
        assert stack.emulator.balance(user) == 50
        # the simulator heard of it, and settled the job without a callback when it was due
        wait_for(lambda: stack.simulator.stats().cancelled > cancelled_before, timeout=30)
        after = client.get(f"/api/v1/generations/{created['id']}").json()
    assert (after["status"], after["samples"]) == ("CANCELLED", [])
    assert len(stack.ledger_for(created["id"])) == 2


def test_a_result_after_a_cancel_is_acknowledged_late_and_changes_nothing(stack: Stack) -> None:
    user = stack.new_user(balance=50)
    created = submit(stack, user, prompt="[hold] answered by hand", samples=1)
    job = next(j for j in stack.jobs_published() if j["request_id"] == created["id"])
    with stack.client(user) as client:
        assert client.post(f"/api/v1/generations/{created['id']}/cancel").status_code == 200
        body = json.dumps(
            {
                "event": "samples_ready",
                "job_id": job["job_id"],
                "request_id": created["id"],
                "samples": [{"id": "s1", "url": "https://assets.example/1.png"}],
            }
        ).encode()
        headers = signed_headers(CALLBACK_SECRET, f"msg_{uuid.uuid4().hex}", int(time.time()), body)
        late = client.post("/api/v1/callbacks/n8n", content=body, headers=headers)
        after = client.get(f"/api/v1/generations/{created['id']}").json()
    assert late.status_code == 200 and late.json()["outcome"] == "late"
    assert (after["status"], after["samples"]) == ("CANCELLED", [])
    assert [e["operation"] for e in stack.ledger_for(created["id"])] == ["debit", "refund"]
    assert stack.emulator.balance(user) == 50


def test_cancel_while_the_final_is_processing_refunds_the_final_and_keeps_the_samples_paid(
    stack: Stack,
) -> None:
    user = stack.new_user(balance=50)
    created = submit(stack, user, prompt="[wait:3] a red kite", samples=1)
    with stack.client(user) as client:
        wait_for_status(client, created["id"], "AWAITING_SELECTION")
        selected = client.post(
            f"/api/v1/generations/{created['id']}/selection", json={"sample_id": "s1"}
        )
        assert selected.json()["status"] == "PROCESSING_FINAL"
        cancelled = client.post(f"/api/v1/generations/{created['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["charges"] == [
        {"action": "samples", "state": "charged", "charged": 2, "refunded": 0},
        {"action": "final", "state": "refunded", "charged": 10, "refunded": 10},
    ]
    assert [(e["action"], e["operation"]) for e in stack.ledger_for(created["id"])] == [
        ("samples", "debit"),
        ("final", "debit"),
        ("final", "refund"),
    ]
    assert stack.emulator.balance(user) == 48

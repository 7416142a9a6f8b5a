"""The product's core flow with jobs dispatched to n8n's webhook instead of RabbitMQ: the same
states, the same credit rules, the same callbacks."""

from __future__ import annotations

from typing import Any

import jsonschema

from creativeflow_devstack.n8n_simulator import load_job_validator
from tests.e2e.conftest import wait_for, wait_for_status
from tests.e2e.test_generation_flow import A_REQUEST
from tests.e2e_webhook.conftest import DISPATCH_ATTEMPTS, WebhookStack


def submit(stack: WebhookStack, user_id: str, **changes: object) -> dict[str, Any]:
    with stack.client(user_id) as client:
        response = client.post("/api/v1/generations", json={**A_REQUEST, **changes})
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


def notified(stack: WebhookStack, request_id: str) -> list[str]:
    return [n.type for n in stack.notifications.find(request_id=request_id)]


def test_submit_samples_selection_final_completes_and_charges_exactly_twice(
    stack: WebhookStack,
) -> None:
    user = stack.new_user(balance=100)
    created = submit(stack, user)
    assert created["status"] == "PROCESSING_SAMPLES"
    request_id = created["id"]
    with stack.client(user) as client:
        awaiting = wait_for_status(client, request_id, "AWAITING_SELECTION")
        assert len(awaiting["samples"]) == 3
        chosen = awaiting["samples"][1]["id"]
        selected = client.post(
            f"/api/v1/generations/{request_id}/selection", json={"sample_id": chosen}
        )
        assert selected.status_code == 202, selected.text
        assert selected.json()["status"] == "PROCESSING_FINAL"
        done = wait_for_status(client, request_id, "COMPLETED")
    assert done["selected_sample_id"] == chosen
    assert done["final_asset"]["url"].startswith("https://")
    assert [h["status"] for h in done["history"]] == [
        "PENDING",
        "VALIDATING_CREDITS",
        "PUBLISHING_TO_QUEUE",
        "PROCESSING_SAMPLES",
        "AWAITING_SELECTION",
        "PROCESSING_FINAL",
        "COMPLETED",
    ]
    ledger = stack.ledger_for(request_id)
    assert [(e["action"], e["operation"], e["amount"]) for e in ledger] == [
        ("samples", "debit", 6),  # pro tier: 2 credits a sample
        ("final", "debit", 10),
    ]
    assert stack.emulator.balance(user) == 84
    jobs = stack.jobs_dispatched(request_id)
    assert [j["stage"] for j in jobs] == ["samples", "final"]
    validator = load_job_validator()
    for job in jobs:
        jsonschema.validate(job, validator.schema)
    assert jobs[1]["parameters"]["selected_sample"]["id"] == chosen
    wait_for(lambda: len(notified(stack, request_id)) >= 2)
    assert notified(stack, request_id) == ["generation.samples_ready", "generation.completed"]


def test_a_dispatch_n8n_refuses_is_503_and_refunded_before_answering(
    stack: WebhookStack,
) -> None:
    user = stack.new_user(balance=100)
    faulted_before = stack.simulator.stats().faulted
    stack.simulator.answer_dispatches_with(500)
    try:
        with stack.client(user) as client:
            response = client.post("/api/v1/generations", json=A_REQUEST)
            listed = client.get("/api/v1/generations").json()
    finally:
        stack.simulator.answer_dispatches_with(None)
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"]
    assert stack.simulator.stats().faulted - faulted_before == DISPATCH_ATTEMPTS
    assert [r["status"] for r in listed["items"]] == ["FAILED"]
    ledger = stack.ledger_of_user(user)
    assert [(e["operation"], e["amount"]) for e in ledger] == [("debit", 6), ("refund", 6)]
    assert stack.emulator.balance(user) == 100


def test_a_failed_final_dispatch_refunds_the_final_only_and_keeps_the_samples(
    stack: WebhookStack,
) -> None:
    user = stack.new_user(balance=100)
    created = submit(stack, user)
    with stack.client(user) as client:
        awaiting = wait_for_status(client, created["id"], "AWAITING_SELECTION")
        stack.simulator.answer_dispatches_with(503)
        try:
            selected = client.post(
                f"/api/v1/generations/{created['id']}/selection",
                json={"sample_id": awaiting["samples"][0]["id"]},
            )
        finally:
            stack.simulator.answer_dispatches_with(None)
        after = client.get(f"/api/v1/generations/{created['id']}").json()
    assert selected.status_code == 503, selected.text
    assert after["status"] == "AWAITING_SELECTION"
    ledger = stack.ledger_for(created["id"])
    assert [(e["action"], e["operation"], e["amount"]) for e in ledger] == [
        ("samples", "debit", 6),
        ("final", "debit", 10),
        ("final", "refund", 10),
    ]
    assert stack.emulator.balance(user) == 94


def test_a_platform_failure_fails_the_request_and_refunds_once(stack: WebhookStack) -> None:
    user = stack.new_user(balance=50)
    created = submit(stack, user, prompt="[fail:platform] a storm at sea")
    with stack.client(user) as client:
        failed = wait_for_status(client, created["id"], "FAILED")
    assert failed["failure"]["category"] == "platform"
    wait_for(lambda: "credits.refunded" in notified(stack, created["id"]))
    ledger = stack.ledger_for(created["id"])
    assert [(e["operation"], e["amount"]) for e in ledger] == [("debit", 6), ("refund", 6)]
    assert stack.emulator.balance(user) == 50
    assert "generation.failed" in notified(stack, created["id"])


def test_a_content_rejection_is_not_refunded(stack: WebhookStack) -> None:
    user = stack.new_user(balance=50)
    created = submit(stack, user, prompt="[fail:content] something not allowed")
    with stack.client(user) as client:
        rejected = wait_for_status(client, created["id"], "CONTENT_REJECTED")
    assert rejected["failure"]["category"] == "content_policy"
    ledger = stack.ledger_for(created["id"])
    assert [(e["operation"], e["amount"]) for e in ledger] == [("debit", 6)]
    assert stack.emulator.balance(user) == 44


def test_a_held_job_is_dispatched_once_and_left_to_its_deadline(stack: WebhookStack) -> None:
    user = stack.new_user(balance=50)
    created = submit(stack, user, prompt="[hold] a very slow render")
    with stack.client(user) as client:
        still = client.get(f"/api/v1/generations/{created['id']}").json()
    assert still["status"] == "PROCESSING_SAMPLES"
    assert [j["stage"] for j in stack.jobs_dispatched(created["id"])] == ["samples"]
    assert [e["operation"] for e in stack.ledger_for(created["id"])] == ["debit"]


def test_a_cancel_while_processing_is_posted_to_the_webhook_and_the_job_dropped(
    stack: WebhookStack,
) -> None:
    user = stack.new_user(balance=50)
    before = stack.simulator.stats()
    created = submit(stack, user, prompt="[wait:3] a quiet bay", samples=2)
    with stack.client(user) as client:
        cancelled = client.post(f"/api/v1/generations/{created['id']}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "CANCELLED"
        assert stack.simulator.stats().cancellations == before.cancellations + 1
        wait_for(lambda: stack.simulator.stats().cancelled == before.cancelled + 1, timeout=30)
        after = client.get(f"/api/v1/generations/{created['id']}").json()
    assert (after["status"], after["samples"]) == ("CANCELLED", [])
    assert [e["operation"] for e in stack.ledger_for(created["id"])] == ["debit", "refund"]
    assert stack.emulator.balance(user) == 50


def test_ready_when_database_webhook_and_odoo_answer(stack: WebhookStack) -> None:
    with stack.client(None) as client:
        ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    # the port's check answers under the "broker" key: here it is n8n's webhook server
    assert ready.json()["checks"] == {"database": True, "broker": True, "odoo": True}
    assert ready.json()["dispatch"] == "webhook"


def test_not_ready_while_n8n_has_no_active_job_webhook(stack: WebhookStack) -> None:
    """The workflow deactivated (or never imported): /readyz says so before any submit is charged
    and refunded, and asking charges, dispatches and starts nothing."""
    ledger_before = len(stack.emulator.ledger())
    handled_before = stack.simulator.handled
    stack.simulator.set_active(False)
    try:
        with stack.client(None) as client:
            unready = client.get("/readyz")
        assert unready.status_code == 503, unready.text
        assert unready.json()["checks"] == {"database": True, "broker": False, "odoo": True}
    finally:
        stack.simulator.set_active(True)
    with stack.client(None) as client:
        assert client.get("/readyz").status_code == 200
    assert len(stack.emulator.ledger()) == ledger_before
    assert stack.simulator.handled == handled_before

"""The product's core flow, end to end, as a user, an Odoo admin and n8n see it."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import jsonschema
import pika

from tests.e2e.conftest import Stack, wait_for, wait_for_status
from tests.integration.rabbit_support import RABBITMQ_URL

SCHEMA = json.loads(
    (Path(__file__).parents[2] / "src/creativeflow/schemas/generation-job.v2.json").read_text()
)

A_REQUEST = {
    "prompt": "a lighthouse at dawn, watercolour",
    "format": "png",
    "width": 1024,
    "height": 1024,
    "samples": 3,
    "style_guidance": "soft light",
    "brand_elements": {"colors": ["#FF6600"], "fonts": ["Inter"]},
    "project_id": "spring",
}


def submit(stack: Stack, user_id: str, **changes: object) -> dict:  # type: ignore[type-arg]
    with stack.client(user_id) as client:
        response = client.post("/api/v1/generations", json={**A_REQUEST, **changes})
    assert response.status_code == 202, response.text
    return response.json()  # type: ignore[no-any-return]


def notified(stack: Stack, request_id: str) -> list[str]:
    return [n.type for n in stack.notifications.find(request_id=request_id)]


def test_submit_samples_selection_final_completes_and_charges_exactly_twice(stack: Stack) -> None:
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
    # the user reads the same bill as Odoo's ledger
    assert done["charges"] == [
        {"action": "samples", "state": "charged", "charged": 6, "refunded": 0},
        {"action": "final", "state": "charged", "charged": 10, "refunded": 0},
    ]
    assert (done["credits_charged"], done["credits_refunded"]) == (16, 0)
    assert selected.json()["credits_charged"] == 16
    jobs = [j for j in stack.jobs_published() if j["request_id"] == request_id]
    assert [j["stage"] for j in jobs] == ["samples", "final"]
    for job in jobs:
        jsonschema.validate(job, SCHEMA)
    assert jobs[1]["parameters"]["selected_sample"]["id"] == chosen
    wait_for(lambda: len(notified(stack, request_id)) >= 2)
    assert notified(stack, request_id) == ["generation.samples_ready", "generation.completed"]


def test_a_platform_failure_fails_the_request_and_refunds_once(stack: Stack) -> None:
    user = stack.new_user(balance=50)
    created = submit(stack, user, prompt="[fail:platform] a storm at sea")
    with stack.client(user) as client:
        failed = wait_for_status(client, created["id"], "FAILED")
    assert failed["failure"]["category"] == "platform"
    ledger = stack.ledger_for(created["id"])
    assert [(e["operation"], e["amount"]) for e in ledger] == [("debit", 6), ("refund", 6)]
    assert stack.emulator.balance(user) == 50
    with stack.client(user) as client:
        url = f"/api/v1/generations/{created['id']}"
        wait_for(lambda: client.get(url).json()["credits_refunded"] == 6)
        refunded = client.get(url).json()
    assert refunded["charges"] == [
        {"action": "samples", "state": "refunded", "charged": 6, "refunded": 6}
    ]
    wait_for(lambda: "credits.refunded" in notified(stack, created["id"]))
    assert "generation.failed" in notified(stack, created["id"])


def test_a_content_rejection_is_not_refunded(stack: Stack) -> None:
    user = stack.new_user(balance=50)
    created = submit(stack, user, prompt="[fail:content] something not allowed")
    with stack.client(user) as client:
        rejected = wait_for_status(client, created["id"], "CONTENT_REJECTED")
    assert rejected["failure"]["category"] == "content_policy"
    ledger = stack.ledger_for(created["id"])
    assert [(e["operation"], e["amount"]) for e in ledger] == [("debit", 6)]
    assert stack.emulator.balance(user) == 44


def test_regeneration_is_charged_again_and_brings_new_samples(stack: Stack) -> None:
    user = stack.new_user(balance=100)
    created = submit(stack, user, samples=2)
    with stack.client(user) as client:
        first = wait_for_status(client, created["id"], "AWAITING_SELECTION")
        again = client.post(f"/api/v1/generations/{created['id']}/regeneration")
        assert again.status_code == 202, again.text
        assert again.json()["status"] == "PROCESSING_SAMPLES"
        second = wait_for_status(client, created["id"], "AWAITING_SELECTION")
    assert second["regeneration_count"] == 1
    assert {s["url"] for s in second["samples"]}.isdisjoint({s["url"] for s in first["samples"]})
    ledger = stack.ledger_for(created["id"])
    assert [(e["action"], e["amount"]) for e in ledger] == [("samples", 4), ("regeneration-1", 2)]
    assert stack.emulator.balance(user) == 94


def test_insufficient_credits_is_402_and_charges_nothing(stack: Stack) -> None:
    user = stack.new_user(balance=3)
    with stack.client(user) as client:
        response = client.post("/api/v1/generations", json=A_REQUEST)
        assert response.status_code == 402
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["code"] == "insufficient_credits"
        assert problem["required"] == 6 and problem["balance"] == 3
        assert problem["title"] == "Not enough credits"
        assert problem["detail"] == (
            "This needs 6 credits and your balance is 3. Add credits or ask for fewer samples, "
            "then try again."
        )
        listed = client.get("/api/v1/generations").json()
    # a refusal is not a platform failure in the user's history
    assert [r["status"] for r in listed["items"]] == ["REFUSED"]
    assert listed["items"][0]["failure"]["category"] == "credits_refused"
    assert listed["items"][0]["charges"] == [
        {"action": "samples", "state": "refused", "charged": 0, "refunded": 0}
    ]
    assert stack.ledger_of_user(user) == []
    assert stack.emulator.balance(user) == 3


def test_a_tier_that_forbids_the_request_is_403(stack: Stack) -> None:
    user = stack.new_user(tier="free", balance=100)
    with stack.client(user) as client:
        response = client.post("/api/v1/generations", json={**A_REQUEST, "format": "webp"})
    assert response.status_code == 403
    problem = response.json()
    assert problem["reason"] == "format_not_allowed"
    assert problem["title"] == "Not included in your plan"
    assert problem["detail"].startswith("Your plan does not include this output format.")
    # Odoo's own wording and the internal phrasing stay out of the user's answer
    assert "Odoo" not in response.text and "Credits refused" not in response.text
    assert stack.ledger_of_user(user) == []


def test_odoo_down_at_submit_is_503_with_no_charge_and_no_transient_request(stack: Stack) -> None:
    user = stack.new_user(balance=100)
    stack.emulator.faults.refuse_connections(True)
    try:
        with stack.client(user) as client:
            response = client.post("/api/v1/generations", json=A_REQUEST)
            listed = client.get("/api/v1/generations").json()
    finally:
        stack.emulator.faults.refuse_connections(False)
    assert response.status_code == 503
    assert response.headers["retry-after"]
    # no internal address or errno reaches the user
    emulator_port = str(httpx.URL(stack.settings.odoo_url).port)
    assert emulator_port not in response.text and "errno" not in response.text.lower()
    assert response.json()["detail"] == (
        "The credit service is unavailable right now and nothing was charged. "
        "Try again in a few seconds."
    )
    assert [r["status"] for r in listed["items"]] == ["FAILED"]
    assert stack.ledger_of_user(user) == []


def test_a_failed_publish_after_the_debit_is_refunded_before_answering(stack: Stack) -> None:
    user = stack.new_user(balance=100)
    settings = stack.settings
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    channel = connection.channel()
    # with no queue bound for the routing key, the broker returns the mandatory message
    channel.queue_unbind(
        settings.rabbitmq_queue, settings.rabbitmq_exchange, settings.rabbitmq_routing_key
    )
    channel.queue_unbind(stack.tap_queue, settings.rabbitmq_exchange, settings.rabbitmq_routing_key)
    try:
        with stack.client(user) as client:
            response = client.post("/api/v1/generations", json=A_REQUEST)
            listed = client.get("/api/v1/generations").json()
    finally:
        channel.queue_bind(
            settings.rabbitmq_queue, settings.rabbitmq_exchange, settings.rabbitmq_routing_key
        )
        channel.queue_bind(
            stack.tap_queue, settings.rabbitmq_exchange, settings.rabbitmq_routing_key
        )
        connection.close()
    assert response.status_code == 503, response.text
    assert [r["status"] for r in listed["items"]] == ["FAILED"]
    ledger = stack.ledger_of_user(user)
    assert [(e["operation"], e["amount"]) for e in ledger] == [("debit", 6), ("refund", 6)]
    assert stack.emulator.balance(user) == 100


def test_credits_show_the_tier_limits_prices_and_balance_from_odoo(stack: Stack) -> None:
    user = stack.new_user(balance=42)
    with stack.client(user) as client:
        credits = client.get("/api/v1/credits").json()
    assert credits["balance"] == 42
    assert credits["tier"]["code"] == "pro"
    assert credits["prices"] == {"sample": 2, "final": 10, "regeneration_sample": 1}


def test_ready_when_database_broker_and_odoo_answer(stack: Stack) -> None:
    with stack.client(None) as client:
        ready = client.get("/readyz")
        alive = client.get("/healthz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": True, "broker": True, "odoo": True}
    assert alive.json() == {"status": "ok"}


def test_a_final_selected_again_after_a_failed_dispatch_is_paid_as_final_2_and_completes(
    stack: Stack,
) -> None:
    """The job of a second final attempt carries action ``final-2``: it must validate against the
    job schema n8n reads, or n8n drops it and the user waits for the deadline."""
    user = stack.new_user(balance=100)
    created = submit(stack, user)
    request_id = created["id"]
    settings = stack.settings
    with stack.client(user) as client:
        wait_for_status(client, request_id, "AWAITING_SELECTION")
        connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
        channel = connection.channel()
        bindings = [(settings.rabbitmq_queue,), (stack.tap_queue,)]
        for (queue,) in bindings:
            channel.queue_unbind(queue, settings.rabbitmq_exchange, settings.rabbitmq_routing_key)
        try:
            failed = client.post(
                f"/api/v1/generations/{request_id}/selection", json={"sample_id": "s1"}
            )
        finally:
            for (queue,) in bindings:
                channel.queue_bind(queue, settings.rabbitmq_exchange, settings.rabbitmq_routing_key)
            connection.close()
        assert failed.status_code == 503, failed.text
        again = client.post(f"/api/v1/generations/{request_id}/selection", json={"sample_id": "s1"})
        assert again.status_code == 202, again.text
        done = wait_for_status(client, request_id, "COMPLETED")
    ledger = stack.ledger_for(request_id)
    assert [(e["action"], e["operation"]) for e in ledger] == [
        ("samples", "debit"),
        ("final", "debit"),
        ("final", "refund"),
        ("final-2", "debit"),
    ]
    [job] = [j for j in stack.jobs_published() if j["action"] == "final-2"]
    jsonschema.validate(job, SCHEMA)
    assert done["credits_charged"] == 6 + 10 + 10 and done["credits_refunded"] == 10


def test_the_creative_brief_is_stored_shown_and_sent_to_n8n(stack: Stack) -> None:
    user = stack.new_user()
    brief = {
        "template": "spring-sale.square",
        "tone": "elegant",
        "cultural_adaptation": {"locale": "zh-Hant-TW", "notes": "red for luck, no white bows"},
        "target_platform": "pinterest_pin",
    }
    created = submit(stack, user, prompt="[hold] tea set, studio light", **brief)
    with stack.client(user) as client:
        shown = client.get(f"/api/v1/generations/{created['id']}").json()
    assert {key: shown[key] for key in brief} == brief
    assert {key: created[key] for key in brief} == brief
    job = next(j for j in stack.jobs_published() if j["request_id"] == created["id"])
    jsonschema.validate(job, SCHEMA)
    assert job["schema"] == "creativeflow.generation-job.v2"
    assert {key: job["parameters"][key] for key in brief} == brief


def test_a_request_without_a_brief_shows_and_sends_nulls(stack: Stack) -> None:
    user = stack.new_user()
    created = submit(stack, user, prompt="[hold] plain")
    job = next(j for j in stack.jobs_published() if j["request_id"] == created["id"])
    keys = ("template", "tone", "cultural_adaptation", "target_platform")
    assert [created[key] for key in keys] == [None] * 4
    assert [job["parameters"][key] for key in keys] == [None] * 4

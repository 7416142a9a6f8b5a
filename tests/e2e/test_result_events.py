"""Result events end to end, through the API and the n8n simulator on real PostgreSQL, RabbitMQ
and the Odoo emulator: a consumer's queue bound to the events exchange receives each result once,
in the published schema; when the events exchange cannot take an event, the request goes on, the
event waits in the outbox (seen on /metrics), and ``creativeflow sweep`` publishes it, once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from prometheus_client.parser import text_string_to_metric_families

from creativeflow.adapters.rabbitmq.events import PikaEventPublisher
from creativeflow.bootstrap import events_config, rabbit_config
from tests.cli_support import run_cli
from tests.e2e.conftest import Stack, events_tap, wait_for, wait_for_status
from tests.e2e.test_generation_flow import notified, submit
from tests.integration.rabbit_support import channel, events_env

ROOT = Path(__file__).resolve().parents[2]
VALIDATOR = jsonschema.Draft202012Validator(
    json.loads((ROOT / "docs/event-message.schema.json").read_text()),
    format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
)


def events_of(stack: Stack, request_id: str, count: int) -> list[dict[str, Any]]:
    """The request's event deliveries, once ``count`` have arrived; each checked against the
    schema and its AMQP properties."""
    found = wait_for(lambda: (e := stack.events_published(request_id)) and len(e) >= count and e)
    for event in found:
        amqp = event.pop("_amqp")
        VALIDATOR.validate(event)
        assert amqp["message_id"] == event["event_id"]
        assert amqp["delivery_mode"] == 2
        assert amqp["type"] == event["event_type"]
        assert (
            amqp["routing_key"]
            == {
                "AIGenerationSamplesReady": "generation.samples_ready",
                "AIGenerationFinalAssetReady": "generation.final_ready",
                "AIGenerationFailed": "generation.failed",
            }[event["event_type"]]
        )
    return found  # type: ignore[no-any-return]


def metric(stack: Stack, name: str, **labels: str) -> float:
    text = httpx.get(f"{stack.api_url}/metrics", timeout=10).text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                total += sample.value
    return total


def test_samples_and_the_final_asset_are_each_published_once(stack: Stack) -> None:
    user = stack.new_user(balance=100)
    created = submit(stack, user)
    request_id = created["id"]
    with stack.client(user) as client:
        awaiting = wait_for_status(client, request_id, "AWAITING_SELECTION")
        [samples] = events_of(stack, request_id, 1)
        chosen = awaiting["samples"][0]["id"]
        assert client.post(
            f"/api/v1/generations/{request_id}/selection", json={"sample_id": chosen}
        ).is_success
        done = wait_for_status(client, request_id, "COMPLETED")
    # the user is notified after the events went out: by then every delivery has arrived
    wait_for(lambda: "generation.completed" in notified(stack, request_id))
    events = events_of(stack, request_id, 2)
    assert [e["event_type"] for e in events] == [
        "AIGenerationSamplesReady",
        "AIGenerationFinalAssetReady",
    ]
    samples, final = events
    assert [s["id"] for s in samples["samples"]] == [s["id"] for s in awaiting["samples"]]
    assert final["final_asset"]["url"] == done["final_asset"]["url"]
    assert final["selected_sample_id"] == chosen
    assert {e["user_id"] for e in events} == {user}
    assert len({e["correlation_id"] for e in events}) == 1  # the request's own, on both
    assert len({e["event_id"] for e in events}) == 2
    assert "prompt" not in json.dumps(events)


@pytest.mark.parametrize(
    ("trigger", "status", "refund"),
    [
        ("[fail:platform]", "FAILED", {"credits": 6, "actions": ["samples"]}),
        ("[fail:content]", "CONTENT_REJECTED", None),
    ],
    ids=["platform", "content"],
)
def test_a_failure_is_published_once_with_what_is_refunded(
    stack: Stack, trigger: str, status: str, refund: dict[str, Any] | None
) -> None:
    user = stack.new_user(balance=50)
    created = submit(stack, user, prompt=f"{trigger} a storm at sea")
    with stack.client(user) as client:
        failed = wait_for_status(client, created["id"], status)
    wait_for(lambda: notified(stack, created["id"]))  # sent after the event went out
    [event] = events_of(stack, created["id"], 1)
    assert (event["event_type"], event["status"]) == ("AIGenerationFailed", status)
    assert event["failure"]["code"] == failed["failure"]["code"]
    assert event["refund"] == refund


def test_an_event_the_exchange_cannot_take_waits_and_the_sweep_publishes_it_once(
    stack: Stack, tmp_path: Path
) -> None:
    settings = stack.settings
    tap = events_tap(stack.tap_queue)
    returned_before = metric(stack, "creativeflow_event_publishes_total", outcome="returned")
    # nobody can take an event: the consumer's binding and the unrouted queue are gone
    with channel() as ch:
        ch.queue_unbind(tap, settings.rabbitmq_events_exchange, "generation.#")
        ch.queue_delete(settings.rabbitmq_events_unrouted_queue)
    try:
        user = stack.new_user(balance=100)
        created = submit(stack, user)
        with stack.client(user) as client:
            wait_for_status(client, created["id"], "AWAITING_SELECTION")  # the flow goes on
        wait_for(
            lambda: (
                metric(stack, "creativeflow_event_publishes_total", outcome="returned")
                > returned_before
            )
        )
        wait_for(lambda: metric(stack, "creativeflow_events_pending") >= 1)
        assert stack.events_published(created["id"]) == []
        with stack.client(None) as client:  # the replica stays in service meanwhile
            assert client.get("/readyz").status_code == 200
    finally:
        PikaEventPublisher(rabbit_config(settings), events_config(settings)).declare_topology()
        with channel() as ch:
            ch.queue_bind(tap, settings.rabbitmq_events_exchange, "generation.#")

    for _ in range(2):  # a second sweep finds nothing more to publish
        outcome = run_cli("sweep", cwd=tmp_path, **sweep_env(stack))
        assert outcome.code == 0, outcome.err
        assert "events published:" in outcome.out
    [event] = events_of(stack, created["id"], 1)
    assert event["event_type"] == "AIGenerationSamplesReady"
    wait_for(lambda: metric(stack, "creativeflow_events_pending") == 0)


def sweep_env(stack: Stack) -> dict[str, str]:
    settings = stack.settings
    return {
        "ENVIRONMENT": "test",
        "DATABASE_URL": settings.database_url,
        "RABBITMQ_URL": settings.rabbitmq_url,
        "RABBITMQ_GENERATION_EXCHANGE": settings.rabbitmq_exchange,
        "RABBITMQ_N8N_JOB_QUEUE": settings.rabbitmq_queue,
        "RABBITMQ_DEAD_LETTER_EXCHANGE": settings.rabbitmq_dead_letter_exchange,
        "RABBITMQ_DEAD_LETTER_QUEUE": settings.rabbitmq_dead_letter_queue,
        "RABBITMQ_N8N_CANCEL_QUEUE": settings.rabbitmq_cancel_queue,
        **events_env(settings),
        "ODOO_URL": settings.odoo_url,
        "ODOO_DB": settings.odoo_db,
        "ODOO_LOGIN": "orchestrator",
        "ODOO_PASSWORD": "orchestrator",
        "NOTIFICATION_SERVICE_URL": settings.notification_service_url,
        # the other tests' debits are theirs: this sweep is here for the outbox
        "RECOVERY_GRACE_SECONDS": "86400",
        "LOG_LEVEL": "WARNING",
    }

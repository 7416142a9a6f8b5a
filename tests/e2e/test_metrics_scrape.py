"""Prometheus scrapes the running service after real flows: the HTTP histogram per route template,
and the business counters and gauges.

The first two tests need nothing but the app factory. The others need the lead's wiring of the
metrics into the composition root and the callback route (see docs/operations.md, "Metrics"):
they fail until ``build_container`` wraps the adapters with ``creativeflow.observability``'s
instrumented ports, registers the tracking, queue and pool sources, and the callback route reports
its outcomes.
"""

from __future__ import annotations

import re
import time
import uuid

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import CALLBACK_SECRET, Stack, wait_for, wait_for_status
from tests.e2e.test_generation_flow import A_REQUEST, submit

HTTP_COUNT = "creativeflow_http_request_duration_seconds_count"
SUBMIT_ROUTE = "/api/v1/generations"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(stack: Stack) -> Samples:
    response = httpx.get(f"{stack.api_url}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    found: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def sample(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum over every series of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))


def full_flow(stack: Stack, **changes: object) -> str:
    user = stack.new_user(balance=100)
    created = submit(stack, user, **changes)
    with stack.client(user) as client:
        awaiting = wait_for_status(client, created["id"], "AWAITING_SELECTION")
        chosen = awaiting["samples"][0]["id"]
        selected = client.post(
            f"/api/v1/generations/{created['id']}/selection", json={"sample_id": chosen}
        )
        assert selected.status_code == 202, selected.text
        wait_for_status(client, created["id"], "COMPLETED")
    return str(created["id"])


# --- needs only the app factory --------------------------------------------------------------


def test_a_full_flow_moves_the_http_histogram_of_the_submit_route(stack: Stack) -> None:
    before = scrape(stack)
    request_id = full_flow(stack)

    def moved() -> Samples | None:
        after = scrape(stack)
        submitted = sample(after, HTTP_COUNT, method="POST", route=SUBMIT_ROUTE, status="202")
        previous = sample(before, HTTP_COUNT, method="POST", route=SUBMIT_ROUTE, status="202")
        return after if submitted >= previous + 1 else None

    after = wait_for(moved)
    selection = "/api/v1/generations/{request_id}/selection"
    assert total(after, HTTP_COUNT, route=selection, status="202") >= 1
    assert total(after, HTTP_COUNT, route="/api/v1/generations/{request_id}", method="GET") >= 1
    assert total(after, HTTP_COUNT, route="/api/v1/callbacks/n8n", status="200") >= 2
    bucket = "creativeflow_http_request_duration_seconds_bucket"
    assert sample(after, bucket, method="POST", route=SUBMIT_ROUTE, status="202", le="+Inf") >= 1
    assert request_id not in str(after.keys())


def test_route_labels_are_templates_never_raw_ids(stack: Stack) -> None:
    user = stack.new_user()
    with stack.client(user) as client:
        for _ in range(3):
            assert client.get(f"/api/v1/generations/{uuid.uuid4()}").status_code == 404
        assert client.get(f"/no/such/{uuid.uuid4()}").status_code == 404
    after = scrape(stack)
    routes = {dict(labels).get("route", "") for (name, labels) in after if name == HTTP_COUNT}
    assert "/api/v1/generations/{request_id}" in routes
    assert "unmatched" in routes
    assert not [route for route in routes if UUID.search(route)]


# --- needs the lead's wiring (docs/operations.md, "Metrics") ---------------------------------


def test_a_full_flow_counts_debits_publishes_callbacks_odoo_calls_and_notifications(
    stack: Stack,
) -> None:
    before = scrape(stack)
    full_flow(stack)
    time.sleep(0.5)  # notifications are sent after the commit, off the request
    after = scrape(stack)

    def grew(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert grew("creativeflow_credits_debited_total", action="samples") == 6
    assert grew("creativeflow_credits_debited_total", action="final") == 10
    publishes = "creativeflow_job_publishes_total"
    assert grew(publishes, stage="samples", outcome="confirmed") == 1
    assert grew(publishes, stage="final", outcome="confirmed") == 1
    assert grew("creativeflow_callbacks_total", outcome="applied") == 2
    odoo = "creativeflow_odoo_call_duration_seconds_count"
    assert grew(odoo, method="debit", outcome="ok") == 2
    assert grew("creativeflow_notifications_total", outcome="sent") >= 2
    assert grew("creativeflow_job_publish_duration_seconds_count", outcome="confirmed") == 2


def test_a_platform_failure_counts_its_refund(stack: Stack) -> None:
    before = scrape(stack)
    user = stack.new_user(balance=50)
    created = submit(stack, user, prompt="[fail:platform] a storm at sea")
    with stack.client(user) as client:
        wait_for_status(client, created["id"], "FAILED")
    after = scrape(stack)
    refunded = "creativeflow_credits_refunded_total"
    assert total(after, refunded, action="samples") - total(before, refunded, action="samples") == 6
    odoo = "creativeflow_odoo_call_duration_seconds_count"
    assert total(after, odoo, method="refund", outcome="ok") > total(before, odoo, method="refund")


def test_a_wrongly_signed_callback_is_counted_as_rejected(stack: Stack) -> None:
    before = scrape(stack)
    body = b'{"event":"failed","job_id":"x","request_id":"y"}'
    response = httpx.post(
        f"{stack.api_url}/api/v1/callbacks/n8n",
        content=body,
        headers={
            "content-type": "application/json",
            "webhook-id": f"msg_{uuid.uuid4().hex}",
            "webhook-timestamp": str(int(time.time())),
            "webhook-signature": "v1,bm90IGEgc2lnbmF0dXJl",
        },
    )
    assert response.status_code == 401
    assert CALLBACK_SECRET  # the stack signs with this secret; the forged one does not
    after = scrape(stack)
    rejected = "creativeflow_callbacks_total"
    assert (
        sample(after, rejected, outcome="rejected")
        == sample(before, rejected, outcome="rejected") + 1
    )


def test_request_gauges_show_a_held_request_and_its_age(stack: Stack) -> None:
    user = stack.new_user(balance=100)
    with stack.client(user) as client:
        response = client.post(
            "/api/v1/generations", json={**A_REQUEST, "prompt": "[hold] waits for ever"}
        )
    assert response.status_code == 202, response.text
    time.sleep(1.1)

    def seen() -> Samples | None:
        after = scrape(stack)
        held = sample(after, "creativeflow_requests", status="PROCESSING_SAMPLES")
        return after if held >= 1 else None

    after = wait_for(seen, timeout=15)  # the tracking source caches for a few seconds
    assert sample(after, "creativeflow_metrics_source_up", source="tracking") == 1
    assert sample(after, "creativeflow_oldest_transient_request_age_seconds") >= 1
    for kind in ("debit", "refund"):
        for status in ("pending", "unknown"):
            key = (
                "creativeflow_credit_operations_unsettled",
                tuple(sorted({"kind": kind, "status": status}.items())),
            )
            assert key in after


def test_pool_and_queue_gauges_are_exposed(stack: Stack) -> None:
    after = scrape(stack)
    settings = stack.settings
    assert sample(after, "creativeflow_pool_size", pool="odoo") == settings.odoo_workers
    assert (
        sample(after, "creativeflow_pool_size", pool="publisher")
        == settings.rabbitmq_publish_workers
    )
    dead = {"role": "dead_letter", "queue": settings.rabbitmq_dead_letter_queue}
    assert ("creativeflow_queue_messages", tuple(sorted(dead.items()))) in after
    assert sample(after, "creativeflow_metrics_source_up", source="queues") == 1
    assert sample(after, "creativeflow_metrics_source_up", source="pools") == 1


def test_readiness_reports_each_dependency(stack: Stack) -> None:
    with stack.client(None) as client:
        assert client.get("/readyz").status_code == 200
    after = scrape(stack)
    for dependency in ("database", "broker", "odoo"):
        assert sample(after, "creativeflow_dependency_up", dependency=dependency) == 1

"""The importable n8n workflow (docs/n8n/creativeflow-generation.json) with
``CREATIVEFLOW_RESULTS_BY_QUEUE=true``, against the service consuming its results queue: the
workflow's own nodes (followed by the harness of ``tests/e2e/test_n8n_workflow.py``) build, sign
and publish the result; what its "Publish result" step describes is published to the real broker
as n8n's RabbitMQ node publishes it (amqplib's ``channel.publish`` with the headers only); the
service's consumer checks and applies it. Nothing is posted back over HTTP.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pika
import pytest

from tests.e2e.conftest import wait_for, wait_for_status
from tests.e2e.test_generation_flow import submit
from tests.e2e.test_n8n_workflow import (
    NODE,
    CallbackRequest,
    ProviderAnswer,
    QueuedResult,
    WorkflowRun,
    env_for,
    images,
    workflow,
)
from tests.e2e_results.conftest import ResultsStack
from tests.e2e_results.test_results_queue_flow import published_job, received_callbacks
from tests.integration.rabbit_support import channel

pytestmark = pytest.mark.skipif(NODE is None, reason="Node.js runs the workflow's JavaScript")


def publish_as_n8n(message: QueuedResult) -> None:
    with channel() as ch:
        ch.basic_publish(
            message.exchange,
            message.routing_key,
            message.body.encode("utf-8"),
            properties=pika.BasicProperties(headers=dict(message.headers)),
        )


def no_http(request: CallbackRequest) -> httpx.Response:
    raise AssertionError(f"the workflow posted to {request.url}")


def queue_run(stack: ResultsStack) -> tuple[WorkflowRun, list[QueuedResult]]:
    """A run of the workflow with results by queue, and the messages it published."""
    definition = workflow()
    env = {
        **env_for(definition),
        "CREATIVEFLOW_RESULTS_BY_QUEUE": "true",
        # this run's names; a deployment with the defaults sets neither
        "CREATIVEFLOW_RESULTS_EXCHANGE": stack.settings.rabbitmq_exchange,
        "CREATIVEFLOW_RESULTS_ROUTING_KEY": stack.settings.rabbitmq_results_routing_key,
    }
    run = WorkflowRun(definition, env)
    published: list[QueuedResult] = []

    def publisher(message: QueuedResult) -> None:
        published.append(message)
        publish_as_n8n(message)

    run.publisher = publisher
    return run, published


def held(stack: ResultsStack, balance: int = 100) -> tuple[str, str, dict[str, Any]]:
    user = stack.new_user(balance=balance)
    request_id = str(submit(stack, user, prompt="[hold] a lighthouse, for the n8n workflow")["id"])
    return user, request_id, published_job(stack, request_id)


def test_the_workflow_publishes_samples_that_the_service_applies(stack: ResultsStack) -> None:
    user, request_id, job = held(stack)
    run, published = queue_run(stack)
    run.deliver(job, ProviderAnswer(result=images(job, 3)), no_http)
    assert "Publish result" in run.visited and "Send callback" not in run.visited
    [message] = published
    with stack.client(user) as client:
        awaiting = wait_for_status(client, request_id, "AWAITING_SELECTION")
    assert awaiting["samples"][0]["url"].endswith("/image-1.png")
    assert received_callbacks(stack, job["job_id"]) == [(message.headers["webhook-id"], "applied")]


def test_the_workflow_publishes_a_final_asset_that_completes_the_request(
    stack: ResultsStack,
) -> None:
    user, request_id, job = held(stack)
    queue_run(stack)[0].deliver(job, ProviderAnswer(result=images(job, 2)), no_http)
    with stack.client(user) as client:
        wait_for_status(client, request_id, "AWAITING_SELECTION")
        selected = client.post(
            f"/api/v1/generations/{request_id}/selection", json={"sample_id": "s1"}
        )
        assert selected.status_code == 202, selected.text
    final_job = published_job(stack, request_id, "final")
    run, _ = queue_run(stack)
    run.deliver(final_job, ProviderAnswer(result=images(final_job, 1)), no_http)
    assert "AI provider: final asset (placeholder)" in run.visited
    with stack.client(user) as client:
        done = wait_for_status(client, request_id, "COMPLETED")
    assert done["final_asset"]["id"] == "final"


def test_a_provider_outage_published_by_the_workflow_fails_and_refunds(
    stack: ResultsStack,
) -> None:
    user, request_id, job = held(stack, balance=50)
    run, published = queue_run(stack)
    run.deliver(job, ProviderAnswer(error={"message": "connect ETIMEDOUT 10.0.0.9:443"}), no_http)
    [message] = published
    assert json.loads(message.body)["error"]["code"] == "provider_timeout"
    with stack.client(user) as client:
        wait_for_status(client, request_id, "FAILED")
    wait_for(lambda: len(stack.ledger_for(request_id)) == 2)
    assert [e["operation"] for e in stack.ledger_for(request_id)] == ["debit", "refund"]
    assert stack.emulator.balance(user) == 50

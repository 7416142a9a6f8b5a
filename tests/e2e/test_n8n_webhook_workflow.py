"""The webhook variant of the n8n workflow (``DISPATCH_MODE=webhook``), read from its JSON and run
as n8n runs it (the Code nodes' JavaScript, the Crypto node's HMAC, the expressions) with the
harness of ``test_n8n_workflow.py``: a job signed as the orchestrator's dispatcher signs it is
verified, answered 202 and answered back to the running service; a forged, stale or misdirected
one fails before anything is accepted, so the orchestrator refunds it."""

from __future__ import annotations

import itertools
import json
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from creativeflow.domain.jobs import JobCancellation, Stage
from creativeflow.webhook_signature import signed_headers
from tests.e2e.conftest import Stack, wait_for_status
from tests.e2e.test_n8n_workflow import (
    HARNESS,
    NODE,
    Context,
    ProviderAnswer,
    WorkflowRun,
    env_for,
    held_request,
    images,
    published_job,
    run_js,
    send,
)

ROOT = Path(__file__).parents[2]
VARIANT = ROOT / "docs/n8n/creativeflow-generation-webhook.json"
JOB_SECRET = "e2e-job-secret"

pytestmark = pytest.mark.skipif(NODE is None, reason="needs Node.js to run the workflow's code")


def variant() -> dict[str, Any]:
    return json.loads(VARIANT.read_text())  # type: ignore[no-any-return]


def nodes() -> dict[str, dict[str, Any]]:
    return {n["name"]: n for n in variant()["nodes"]}


def env() -> dict[str, str]:
    return {
        **env_for(json.loads((ROOT / "docs/n8n/creativeflow-generation.json").read_text())),
        "CREATIVEFLOW_JOB_SECRET": JOB_SECRET,
    }


def webhook_item(
    job: dict[str, Any],
    *,
    signed_at: int | None = None,
    webhook_id: str | None = None,
    **header_changes: str,
) -> dict[str, Any]:
    """What n8n's Webhook node emits for the orchestrator's signed POST of ``job``."""
    body = json.dumps(job, separators=(",", ":"), ensure_ascii=False).encode()
    at = int(time.time()) if signed_at is None else signed_at
    headers = signed_headers(JOB_SECRET, webhook_id or job["job_id"], at, body)
    headers.update(header_changes)
    return {"headers": {k.lower(): v for k, v in headers.items()}, "body": json.loads(body)}


def verified(item: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """Run "Verify signature" then "Check job" on the webhook's item."""
    run = WorkflowRun(variant(), env())
    signed = run.sign(nodes()["Verify signature"], item)
    task = {
        "kind": "code",
        "code": nodes()["Check job"]["parameters"]["jsCode"],
        "context": Context({}, "e", env()).for_item(signed),
    }
    assert NODE is not None
    return subprocess.run(
        [NODE, "-e", HARNESS], input=json.dumps(task), capture_output=True, text=True, timeout=30
    )


def test_the_variant_listens_where_the_orchestrator_dispatches() -> None:
    definition = variant()
    assert len(definition["id"]) == 16 and definition["id"].isalnum()
    default_url = next(
        line.split("=", 1)[1]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line.startswith("N8N_WEBHOOK_URL=")
    )
    path = urlsplit(default_url).path.rsplit("/", 1)[1]
    webhooks = [n for n in definition["nodes"] if n["type"] == "n8n-nodes-base.webhook"]
    # one webhook: the orchestrator's readiness probe is a CORS preflight (OPTIONS) for POST on
    # this path, which n8n answers from its registered webhooks without starting an execution
    assert [(n["parameters"]["httpMethod"], n["parameters"]["path"]) for n in webhooks] == [
        ("POST", path)
    ]
    assert webhooks[0]["parameters"]["responseMode"] == "responseNode"
    # verified, then answered 202, before any provider is called
    order = [
        "Job webhook",
        "Verify signature",
        "Check job",
        "Job or cancellation?",
        "Accept job",
        "Still wanted?",
        "Route by stage",
    ]
    for before, after in itertools.pairwise(order):
        assert definition["connections"][before]["main"][0][0]["node"] == after
    assert nodes()["Accept job"]["parameters"]["options"]["responseCode"] == 202


def reachable(definition: dict[str, Any], start: str) -> set[str]:
    seen = {start}
    frontier = [start]
    while frontier:
        for targets in definition["connections"].get(frontier.pop(), {}).get("main", []):
            for target in targets:
                if target["node"] not in seen:
                    seen.add(target["node"])
                    frontier.append(target["node"])
    return seen


def test_the_variant_runs_the_queue_workflows_nodes_from_route_by_stage_on() -> None:
    """Two files, one generation: every node from *Route by stage* on (provider placeholders,
    callback building, stamping, signing, sending, retrying) is the queue workflow's, parameter
    for parameter and connection for connection, so a fix to one cannot miss the other."""
    queue = json.loads((ROOT / "docs/n8n/creativeflow-generation.json").read_text())
    shared = reachable(queue, "Route by stage")
    assert reachable(variant(), "Route by stage") == shared
    kept = ("type", "typeVersion", "parameters", "onError", "retryOnFail", "credentials")

    def described(definition: dict[str, Any], name: str) -> dict[str, Any]:
        node = next(n for n in definition["nodes"] if n["name"] == name)
        return {key: node.get(key) for key in kept} | {
            "connections": definition["connections"].get(name)
        }

    for name in shared:
        assert described(variant(), name) == described(queue, name), name


def test_the_variant_is_importable_as_n8n_stores_it() -> None:
    definition = variant()
    names = [n["name"] for n in definition["nodes"]]
    assert len(set(names)) == len(names)
    assert len({n["id"] for n in definition["nodes"]}) == len(names)
    notes = {n["name"] for n in definition["nodes"] if n["type"] == "n8n-nodes-base.stickyNote"}
    assert reachable(definition, "Job webhook") == set(names) - notes
    webhook_ids = [n["webhookId"] for n in definition["nodes"] if "webhookId" in n]
    queue = json.loads((ROOT / "docs/n8n/creativeflow-generation.json").read_text())
    queue_ids = {n["webhookId"] for n in queue["nodes"] if "webhookId" in n}
    assert len(set(webhook_ids)) == len(webhook_ids) and not set(webhook_ids) & queue_ids


def test_a_signed_job_is_verified_accepted_and_answered_back(stack: Stack) -> None:
    user, request_id = held_request(stack, balance=100)
    job = published_job(stack, request_id, "samples")
    run = WorkflowRun(variant(), env())
    item = webhook_item(job)
    signed = run.sign(nodes()["Verify signature"], item)
    checked = run_js(
        {
            "kind": "code",
            "code": nodes()["Check job"]["parameters"]["jsCode"],
            "context": run.context.for_item(signed),
        }
    )
    assert checked["job_id"] == job["job_id"]
    run.context.nodes["Check job"] = checked
    request = run.run_from("Check job", checked, ProviderAnswer(result=images(job, 3)))
    assert run.responded == 202
    assert send(request).json()["outcome"] == "applied"
    with stack.client(user) as client:
        wait_for_status(client, request_id, "AWAITING_SELECTION")


def _a_job() -> dict[str, Any]:
    return {
        "schema": "creativeflow.generation-job.v1",
        "event": "AIGenerationJobRequested",
        "job_id": "5d0e8d4e-6c1a-4f0e-9a51-3f3d2b1c0a99",
        "request_id": "r-1",
        "stage": "samples",
        "parameters": {"prompt": "un phare à l'aube ✨", "width": 64, "height": 64},
        "callback": {"samples_url": "a", "final_url": "b", "error_url": "c"},
    }


def test_a_job_with_non_ascii_text_verifies() -> None:
    done = verified(webhook_item(_a_job()))
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"webhook-signature": "v1,AAAA"}, "does not match"),
        ({"webhook-id": "another-job"}, "does not match"),
    ],
    ids=["forged", "other-id"],
)
def test_a_forged_or_misdirected_job_fails_before_it_is_accepted(
    change: dict[str, str], why: str
) -> None:
    done = verified(webhook_item(_a_job(), **change))
    assert done.returncode != 0 and why in done.stderr


def test_a_job_signed_an_hour_ago_is_stale() -> None:
    done = verified(webhook_item(_a_job(), signed_at=int(time.time()) - 3600))
    assert done.returncode != 0 and "five minutes" in done.stderr


def test_a_job_changed_after_signing_fails() -> None:
    item = webhook_item(_a_job())
    item["body"]["stage"] = "final"
    done = verified(item)
    assert done.returncode != 0 and "does not match" in done.stderr


def cancellation_of(job: dict[str, Any]) -> JobCancellation:
    return JobCancellation(
        job_id=job["job_id"],
        request_id=job["request_id"],
        stage=Stage(job["stage"]),
        action=job.get("action", "samples"),
        correlation_id=job.get("correlation_id", "c-1"),
        cancelled_at=datetime.now(UTC),
    )


def test_a_signed_cancellation_is_remembered_and_the_job_then_dropped(stack: Stack) -> None:
    _, request_id = held_request(stack, balance=100)
    job = published_job(stack, request_id, "samples")
    cancellation = cancellation_of(job)
    item = webhook_item(cancellation.to_json_dict(), webhook_id=cancellation.message_id)
    static_data: dict[str, Any] = {}
    run = WorkflowRun(variant(), env(), static_data)
    signed = run.sign(nodes()["Verify signature"], item)
    run.run_from("Verify signature", signed, ProviderAnswer(), send)
    assert run.visited[-2:] == ["Remember cancellation", "Accept cancellation"]
    assert run.responded == 200
    assert list(static_data["global"]["cancelledJobs"]) == [job["job_id"]]

    later = WorkflowRun(variant(), env(), static_data)
    job_item = later.sign(nodes()["Verify signature"], webhook_item(job))
    later.run_from("Verify signature", job_item, ProviderAnswer(result=images(job, 2)), send)
    assert later.responded == 202  # taken, then dropped: the orchestrator counts it dispatched
    assert later.visited[-1] == "Still wanted?"
    assert not later.provider_called and later.delivery.tries == []


def test_a_cancellation_signed_as_a_job_is_refused() -> None:
    cancellation = cancellation_of(_a_job())
    done = verified(webhook_item(cancellation.to_json_dict(), webhook_id=cancellation.job_id))
    assert done.returncode != 0 and "cancel-<job id>" in done.stderr

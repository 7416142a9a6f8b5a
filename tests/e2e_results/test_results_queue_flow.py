"""n8n's results over the results queue, end to end: the whole flow with no HTTP from n8n, and
what a duplicate, a forged or malformed message and a database outage do (or do not do)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url

from creativeflow.domain.jobs import FailureCategory
from creativeflow_devstack.n8n_simulator import Outcome, OutcomeKind
from creativeflow_devstack.n8n_simulator.outcomes import build_callback
from tests.e2e.conftest import wait_for, wait_for_status
from tests.e2e.test_generation_flow import submit
from tests.e2e_results.conftest import ResultsStack
from tests.integration.rabbit_support import get_message, queue_depth

SUCCESS = Outcome(OutcomeKind.SUCCESS)


def settled(stack: ResultsStack, settlement: str) -> float:
    value = stack.app.state.metrics.registry.get_sample_value(
        "creativeflow_results_queue_messages_total", {"settlement": settlement}
    )
    return float(value or 0)


def callbacks_counted(stack: ResultsStack, outcome: str) -> float:
    value = stack.app.state.metrics.registry.get_sample_value(
        "creativeflow_callbacks_total", {"outcome": outcome}
    )
    return float(value or 0)


def published_job(stack: ResultsStack, request_id: str, stage: str = "samples") -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        for job in stack.jobs_published():
            if job["request_id"] == request_id and job["stage"] == stage:
                return job
        return None

    return wait_for(found)  # type: ignore[no-any-return]


def held(stack: ResultsStack, balance: int = 100) -> tuple[str, str, dict[str, Any]]:
    """A request whose samples job the simulator leaves alone: the test answers it."""
    user = stack.new_user(balance=balance)
    request_id = str(submit(stack, user, prompt="[hold] a lighthouse at dawn")["id"])
    return user, request_id, published_job(stack, request_id)


def notified(stack: ResultsStack, request_id: str) -> list[str]:
    return [n.type for n in stack.notifications.find(request_id=request_id)]


def view(stack: ResultsStack, user: str, request_id: str) -> dict[str, Any]:
    with stack.client(user) as client:
        body: dict[str, Any] = client.get(f"/api/v1/generations/{request_id}").json()
    return body


def received_callbacks(stack: ResultsStack, job_id: str) -> list[tuple[str, str]]:
    db = stack.container().db
    with db.engine.connect() as connection:
        rows = connection.execute(
            text("SELECT webhook_id, outcome FROM received_callbacks WHERE job_id = :job"),
            {"job": job_id},
        ).all()
    return [(str(r[0]), str(r[1])) for r in rows]


# --- the flow, with no HTTP from n8n ---------------------------------------------------------


def test_samples_selection_final_complete_with_results_by_queue_only(stack: ResultsStack) -> None:
    assert stack.settings.n8n_callback_base_url == "http://127.0.0.1:1"  # nobody to call back
    user = stack.new_user(balance=100)
    request_id = submit(stack, user)["id"]
    with stack.client(user) as client:
        awaiting = wait_for_status(client, request_id, "AWAITING_SELECTION")
        assert [s["id"] for s in awaiting["samples"]] == ["s1", "s2", "s3"]
        selected = client.post(
            f"/api/v1/generations/{request_id}/selection", json={"sample_id": "s2"}
        )
        assert selected.status_code == 202, selected.text
        done = wait_for_status(client, request_id, "COMPLETED")
    assert done["final_asset"]["id"] == "final"
    assert [(e["action"], e["operation"]) for e in stack.ledger_for(request_id)] == [
        ("samples", "debit"),
        ("final", "debit"),
    ]
    # notifications go out after the commit: the sink may hear of the last one a moment later
    expected = ["generation.samples_ready", "generation.completed"]
    wait_for(lambda: [n.type for n in stack.notifications.find(request_id=request_id)] == expected)
    assert stack.simulator.stats().callbacks_delivered >= 2


def test_a_platform_failure_by_queue_fails_the_request_and_refunds(stack: ResultsStack) -> None:
    user = stack.new_user(balance=50)
    request_id = submit(stack, user, prompt="[fail:platform] a lighthouse")["id"]
    with stack.client(user) as client:
        failed = wait_for_status(client, request_id, "FAILED")
    assert failed["failure"]["code"] == "provider_unavailable"
    wait_for(lambda: len(stack.ledger_for(request_id)) == 2)
    assert [e["operation"] for e in stack.ledger_for(request_id)] == ["debit", "refund"]
    assert stack.emulator.balance(user) == 50


def test_a_content_rejection_by_queue_is_not_refunded(stack: ResultsStack) -> None:
    user = stack.new_user(balance=50)
    request_id = submit(stack, user, prompt="[fail:content] a lighthouse")["id"]
    with stack.client(user) as client:
        wait_for_status(client, request_id, "CONTENT_REJECTED")
    assert [e["operation"] for e in stack.ledger_for(request_id)] == ["debit"]


def test_readiness_reports_the_results_consumer(stack: ResultsStack) -> None:
    ready = httpx.get(f"{stack.api_url}/readyz", timeout=30)
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["results_queue"] is True


# --- what changes nothing --------------------------------------------------------------------


def test_the_same_message_twice_is_applied_once(stack: ResultsStack) -> None:
    user, request_id, job = held(stack)
    payload = build_callback(job, SUCCESS)
    acked_before = settled(stack, "acked")
    replayed_before = callbacks_counted(stack, "replayed")
    webhook_id = stack.publish_result(payload)
    stack.publish_result(payload, webhook_id=webhook_id)  # n8n published it twice
    with stack.client(user) as client:
        wait_for_status(client, request_id, "AWAITING_SELECTION")
    wait_for(lambda: settled(stack, "acked") >= acked_before + 2)
    assert callbacks_counted(stack, "replayed") == replayed_before + 1
    history = [h["status"] for h in view(stack, user, request_id)["history"]]
    assert history.count("AWAITING_SELECTION") == 1
    assert received_callbacks(stack, job["job_id"]) == [(webhook_id, "applied")]
    wait_for(lambda: notified(stack, request_id) == ["generation.samples_ready"])
    assert notified(stack, request_id) == ["generation.samples_ready"]
    assert queue_depth(stack.dead_letters) == 0


def test_a_forged_result_is_dead_lettered_and_changes_nothing(stack: ResultsStack) -> None:
    user, request_id, job = held(stack, balance=50)
    failure = build_callback(
        job, Outcome(OutcomeKind.FAILURE, FailureCategory.PLATFORM, "provider_timeout")
    )
    rejected_before = callbacks_counted(stack, "rejected")
    webhook_id = stack.publish_result(failure, secret="not-the-orchestrators-secret")
    dead = get_message(stack.dead_letters, timeout=20)
    assert dead is not None
    assert dead.properties.headers["webhook-id"] == webhook_id
    assert callbacks_counted(stack, "rejected") == rejected_before + 1
    assert view(stack, user, request_id)["status"] == "PROCESSING_SAMPLES"
    assert received_callbacks(stack, job["job_id"]) == []
    assert [e["operation"] for e in stack.ledger_for(request_id)] == ["debit"]
    # the genuine result still applies
    stack.publish_result(build_callback(job, SUCCESS))
    with stack.client(user) as client:
        wait_for_status(client, request_id, "AWAITING_SELECTION")


def test_a_stale_or_malformed_result_is_dead_lettered(stack: ResultsStack) -> None:
    user, request_id, job = held(stack)
    retention = int(stack.settings.received_callback_retention_hours * 3600)
    stack.publish_result(build_callback(job, SUCCESS), timestamp=int(time.time()) - retention - 60)
    stale = get_message(stack.dead_letters, timeout=20)
    assert stale is not None
    stack.publish_result(b"{not json")
    malformed = get_message(stack.dead_letters, timeout=20)
    assert malformed is not None and malformed.body == b"{not json"
    assert view(stack, user, request_id)["status"] == "PROCESSING_SAMPLES"
    assert received_callbacks(stack, job["job_id"]) == []


def test_a_result_that_waited_in_the_queue_past_five_minutes_still_applies(
    stack: ResultsStack,
) -> None:
    """The orchestrator was down a while: the signature's timestamp is old, the webhook-id is
    still kept, so the result is applied (and a replay would still be recognised)."""
    user, request_id, job = held(stack)
    stack.publish_result(build_callback(job, SUCCESS), timestamp=int(time.time()) - 1800)
    with stack.client(user) as client:
        wait_for_status(client, request_id, "AWAITING_SELECTION")


# --- a database outage, then recovery --------------------------------------------------------


def _psql(sql: str) -> str:
    done = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-tAc", sql],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout.strip()


@contextmanager
def database_down(database_url: str) -> Iterator[None]:
    """The tracking database refuses every connection, and those open are cut, until the
    ``with`` block ends."""
    name = make_url(database_url).database
    _psql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
    try:
        _psql(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        )
        yield
    finally:
        _psql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


def test_a_database_outage_delays_the_result_which_then_applies_once(
    stack: ResultsStack,
) -> None:
    user, request_id, job = held(stack, balance=50)
    retried_before = settled(stack, "retried")
    with database_down(stack.settings.database_url):
        webhook_id = stack.publish_result(build_callback(job, SUCCESS))
        # tried, refused by the database, and put back to wait; more than once
        wait_for(lambda: settled(stack, "retried") >= retried_before + 2, timeout=30)
    with stack.client(user) as client:
        awaiting = wait_for_status(client, request_id, "AWAITING_SELECTION")
    assert [h["status"] for h in awaiting["history"]].count("AWAITING_SELECTION") == 1
    assert received_callbacks(stack, job["job_id"]) == [(webhook_id, "applied")]
    assert [e["operation"] for e in stack.ledger_for(request_id)] == ["debit"]
    assert queue_depth(stack.dead_letters) == 0
    wait_for(lambda: queue_depth(stack.settings.rabbitmq_results_queue + ".retry") == 0)


def test_odoo_down_when_a_failure_arrives_acks_it_and_recovery_refunds_later(
    stack: ResultsStack,
) -> None:
    """The failure's change commits (FAILED, the refund journaled) and the message is acked;
    the refund Odoo could not take is settled by recovery, once."""
    import asyncio
    from datetime import timedelta

    from creativeflow.clock import SystemClock
    from creativeflow.services.recovery import Recovery

    user, request_id, job = held(stack, balance=50)
    outage = Outcome(OutcomeKind.FAILURE, FailureCategory.PLATFORM, "provider_unavailable")
    acked_before, retried_before = settled(stack, "acked"), settled(stack, "retried")
    stack.emulator.faults.refuse_connections(True)
    try:
        stack.publish_result(build_callback(job, outage))
        with stack.client(user) as client:
            wait_for_status(client, request_id, "FAILED")
        wait_for(lambda: settled(stack, "acked") == acked_before + 1)
        assert [e["operation"] for e in stack.ledger_for(request_id)] == ["debit"]
    finally:
        stack.emulator.faults.refuse_connections(False)
    assert settled(stack, "retried") == retried_before
    container = stack.container()
    recovery = Recovery(
        container.db,
        container.credits,
        container.refunder,
        container.notifier,
        SystemClock(),
        grace=timedelta(0),
    )
    asyncio.run(recovery.sweep())
    assert [e["operation"] for e in stack.ledger_for(request_id)] == ["debit", "refund"]
    asyncio.run(recovery.sweep())
    assert [e["operation"] for e in stack.ledger_for(request_id)] == ["debit", "refund"]
    assert stack.emulator.balance(user) == 50
    assert queue_depth(stack.dead_letters) == 0

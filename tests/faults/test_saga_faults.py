"""One fault at each step of the saga; recovery runs; the invariants hold.

Invariant 1: every debit in Odoo's ledger backs dispatched work or has its refund.
Invariant 2: no request is charged twice for one action.
Invariant 4: no request stays in a transient state past its deadline.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import pytest

from creativeflow.domain.errors import CreditServiceUnavailable, DispatchUnavailable
from creativeflow.domain.jobs import CallbackEvent, FailureCategory
from creativeflow.domain.model import Failure, Sample
from creativeflow.domain.states import Status
from creativeflow.services.callbacks import CallbackReport
from creativeflow.services.generations import SubmitGeneration
from tests.faults.conftest import Rig, SimulatedCrash
from tests.integration.rabbit_support import close_broker_connections, rabbitmqctl_available

A_SUBMIT = SubmitGeneration(
    prompt="a quiet harbour", format="png", width=1024, height=1024, samples=2
)

pytestmark = pytest.mark.asyncio


async def submit(rig: Rig, user: str) -> str:
    request = await rig.container.generations.submit(user, A_SUBMIT, uuid.uuid4().hex)
    return request.id


async def crash_submit(rig: Rig, user: str, point: str) -> None:
    rig.switch.point = point
    with pytest.raises(SimulatedCrash):
        await rig.container.generations.submit(user, A_SUBMIT, uuid.uuid4().hex)
    assert rig.switch.fired == [point]


async def samples_arrive(rig: Rig, request_id: str) -> None:
    job = rig.publisher.published[-1]
    assert job.request_id == request_id
    await rig.container.callbacks.handle(
        CallbackReport(
            webhook_id=f"msg_{uuid.uuid4().hex}",
            event=CallbackEvent.SAMPLES_READY,
            job_id=job.job_id,
            request_id=request_id,
            samples=(Sample("s1", "https://assets.example/s1.png"),),
        )
    )
    await settle_events(rig)


async def settle_events(rig: Rig) -> None:
    """The result events the last change made, published (after its answer, in the background)."""
    if rig.container.event_relay is not None:
        await rig.container.event_relay.settle()


@pytest.mark.parametrize(
    "point",
    ["before_debit", "after_debit_applied", "before_publish", "after_publish"],
    ids=[
        "after-the-tracking-insert",
        "after-the-debit-before-its-reply",
        "after-the-debit-reply",
        "after-the-publish-before-the-status-update",
    ],
)
async def test_a_crash_at_each_step_of_submit_is_settled_by_recovery(rig: Rig, point: str) -> None:
    user = rig.new_user(balance=100)
    await crash_submit(rig, user, point)
    [stuck] = rig.requests_of(user)
    assert stuck.status is Status.VALIDATING_CREDITS
    await rig.recover()
    [settled] = rig.requests_of(user)
    assert settled.status is Status.FAILED
    assert rig.emulator.balance(user) == 100  # debited and refunded, or never debited
    await rig.assert_invariants([user], {user: 100})


async def test_a_crash_after_publish_then_the_late_callback_changes_nothing(rig: Rig) -> None:
    user = rig.new_user(balance=100)
    await crash_submit(rig, user, "after_publish")
    [request] = rig.requests_of(user)
    await rig.recover()
    await samples_arrive(rig, request.id)  # n8n did get the job and answers after the refund
    [after] = rig.requests_of(user)
    assert after.status is Status.FAILED
    assert [e["operation"] for e in rig.emulator.ledger() if e["user_id"] == user] == [
        "debit",
        "refund",
    ]
    await rig.assert_invariants([user], {user: 100})


async def test_applied_then_reply_lost_is_learnt_from_the_ledger_and_charged_once(rig: Rig) -> None:
    user = rig.new_user(balance=100)
    rig.emulator.faults.lose_reply_next(2)  # every try of the debit loses its reply
    request_id = await submit(rig, user)
    [request] = rig.requests_of(user)
    assert request.status is Status.PROCESSING_SAMPLES
    debits = [e for e in rig.emulator.ledger() if e["request_id"] == request_id]
    assert [e["operation"] for e in debits] == ["debit"]
    await rig.recover()
    await rig.assert_invariants([user], {user: 100})


async def test_odoo_down_charges_nothing_and_leaves_nothing_transient(rig: Rig) -> None:
    user = rig.new_user(balance=100)
    rig.emulator.faults.refuse_connections(True)
    try:
        with pytest.raises(CreditServiceUnavailable):
            await submit(rig, user)
    finally:
        rig.emulator.faults.refuse_connections(False)
    [request] = rig.requests_of(user)
    assert request.status is Status.FAILED
    await rig.recover()
    await rig.assert_invariants([user], {user: 100})


async def test_odoo_down_during_a_refund_is_retried_by_recovery(rig: Rig) -> None:
    user = rig.new_user(balance=100)
    request_id = await submit(rig, user)
    job = rig.publisher.published[-1]
    rig.emulator.faults.refuse_connections(True)
    try:
        await rig.container.callbacks.handle(
            CallbackReport(
                webhook_id=f"msg_{uuid.uuid4().hex}",
                event=CallbackEvent.FAILED,
                job_id=job.job_id,
                request_id=request_id,
                failure=Failure(FailureCategory.PLATFORM, "provider_down", "down"),
            )
        )
    finally:
        rig.emulator.faults.refuse_connections(False)
    assert rig.emulator.balance(user) == 96  # the refund could not reach Odoo
    await rig.recover()
    assert rig.emulator.balance(user) == 100
    await rig.assert_invariants([user], {user: 100})


async def test_a_crash_in_the_middle_of_a_failure_callback_is_refunded_by_recovery(
    rig: Rig,
) -> None:
    user = rig.new_user(balance=100)
    request_id = await submit(rig, user)
    job = rig.publisher.published[-1]
    rig.switch.point = "before_refund"
    with pytest.raises(SimulatedCrash):
        await rig.container.callbacks.handle(
            CallbackReport(
                webhook_id=f"msg_{uuid.uuid4().hex}",
                event=CallbackEvent.FAILED,
                job_id=job.job_id,
                request_id=request_id,
                failure=Failure(FailureCategory.PLATFORM, "provider_timeout", "slow"),
            )
        )
    [request] = rig.requests_of(user)
    assert request.status is Status.FAILED
    assert rig.emulator.balance(user) == 96
    await rig.recover()
    assert rig.emulator.balance(user) == 100
    await rig.assert_invariants([user], {user: 100})


async def test_a_crash_during_a_selection_is_refunded_and_the_request_can_be_selected_again(
    rig: Rig,
) -> None:
    user = rig.new_user(balance=100)
    request_id = await submit(rig, user)
    await samples_arrive(rig, request_id)
    rig.switch.point = "before_publish"
    with pytest.raises(SimulatedCrash):
        await rig.container.generations.select(user, request_id, "s1")
    await rig.recover()
    [request] = rig.requests_of(user)
    assert request.status is Status.AWAITING_SELECTION
    assert rig.emulator.balance(user) == 96  # the final debit was refunded
    selected = await rig.container.generations.select(user, request_id, "s1")
    assert selected.status is Status.PROCESSING_FINAL
    actions = [
        (e["action"], e["operation"])
        for e in rig.emulator.ledger()
        if e["request_id"] == request_id
    ]
    assert actions == [
        ("samples", "debit"),
        ("final", "debit"),
        ("final", "refund"),
        ("final-2", "debit"),
    ]
    await rig.assert_invariants([user], {user: 100})


async def test_jobs_past_their_deadline_fail_and_are_refunded(rig: Rig) -> None:
    user = rig.new_user(balance=100)
    await submit(rig, user)
    await rig.recover()  # its clock is a day ahead: the samples deadline has passed
    [request] = rig.requests_of(user)
    assert request.status is Status.FAILED
    assert request.failure is not None and request.failure.code == "timeout"
    assert rig.emulator.balance(user) == 100
    await rig.assert_invariants([user], {user: 100})


@pytest.mark.skipif(not rabbitmqctl_available(), reason="needs rabbitmqctl to cut connections")
async def test_cut_broker_connections_are_reopened_for_the_next_job(rig: Rig) -> None:
    user = rig.new_user(balance=100)
    await submit(rig, user)
    assert close_broker_connections(rig.publisher.config.connection_name) >= 1
    second = await submit(rig, user)
    [newest, _] = rig.requests_of(user)
    assert newest.id == second and newest.status is Status.PROCESSING_SAMPLES
    await samples_arrive(rig, second)
    await rig.assert_invariants([user], {user: 100})


@contextmanager
def publishes_failing(rig: Rig) -> Iterator[None]:
    """Every publish in the block fails: it names an exchange that does not exist, so the broker
    closes the channel."""
    original = rig.publisher._real._config
    rig.publisher._real._config = replace(original, exchange=f"missing-{uuid.uuid4().hex}")
    try:
        yield
    finally:
        rig.publisher._real._config = original


async def test_a_failed_publish_is_compensated_before_the_answer(rig: Rig) -> None:
    user = rig.new_user(balance=100)
    with publishes_failing(rig), pytest.raises(DispatchUnavailable):
        await submit(rig, user)
    [request] = rig.requests_of(user)
    assert request.status is Status.FAILED
    assert rig.emulator.balance(user) == 100
    await rig.assert_invariants([user], {user: 100})


def _terminate_backends(database_url: str) -> int:
    from sqlalchemy.engine import make_url

    name = make_url(database_url).database
    done = subprocess.run(
        [
            "psql",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-tAc",
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            f"WHERE datname = '{name}' AND application_name = 'creativeflow-orchestrator'",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return int(done.stdout.strip() or 0)


async def test_dropped_database_connections_are_replaced(
    rig: Rig, tracking_database_url: str
) -> None:
    user = rig.new_user(balance=100)
    await submit(rig, user)
    assert _terminate_backends(tracking_database_url) >= 1
    await submit(rig, user)
    assert [r.status for r in rig.requests_of(user)] == [Status.PROCESSING_SAMPLES] * 2
    await rig.recover()
    await rig.assert_invariants([user], {user: 100})


async def test_one_sweep_settles_more_stuck_requests_than_one_batch_holds(rig: Rig) -> None:
    from datetime import timedelta

    from creativeflow.services.recovery import Recovery
    from tests.faults.conftest import LaterClock

    user = rig.new_user(balance=100)
    for point in ["after_debit_applied", "before_publish", "before_debit"] * 2 + ["after_publish"]:
        await crash_submit(rig, user, point)
        rig.switch.fired.clear()
    recovery = Recovery(
        rig.container.db,
        rig.container.credits,
        rig.container.refunder,
        rig.container.notifier,
        LaterClock(timedelta(days=1)),
        grace=timedelta(0),
        batch=2,
    )
    report = await recovery.sweep()
    assert report.debits_settled == 7
    assert {r.status for r in rig.requests_of(user)} == {Status.FAILED}
    assert rig.emulator.balance(user) == 100
    await rig.assert_invariants([user], {user: 100})

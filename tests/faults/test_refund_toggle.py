"""``ENABLE_CREDIT_REFUND_ON_SYSTEM_FAILURE``, both ways (docs/decisions.md, "Refunds and the
toggle"): dispatched work that fails on the platform (n8n's report, or no answer before the
deadline) is refunded only while it is on; a debit whose job never left is refunded whatever it
says, since the user was charged for nothing. Either way the books reconcile."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from creativeflow.domain.errors import DispatchUnavailable
from creativeflow.domain.jobs import CallbackEvent, FailureCategory
from creativeflow.domain.model import Failure
from creativeflow.domain.states import Status
from creativeflow.services.callbacks import CallbackReport
from tests.faults.conftest import Rig
from tests.faults.test_saga_faults import publishes_failing, submit

pytestmark = pytest.mark.asyncio


@pytest.fixture(params=[True, False], ids=["refund-on", "refund-off"])
def rig_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    return {"enable_credit_refund_on_system_failure": request.param}


def _refunding(rig: Rig) -> bool:
    return rig.settings.enable_credit_refund_on_system_failure


def _operations(rig: Rig, request_id: str) -> list[tuple[str, str]]:
    return [
        (e["action"], e["operation"])
        for e in rig.emulator.ledger()
        if e["request_id"] == request_id
    ]


async def test_a_platform_failure_reported_by_n8n_is_refunded_as_the_toggle_says(
    rig: Rig,
) -> None:
    user = rig.new_user(balance=100)
    request_id = await submit(rig, user)
    job = rig.publisher.published[-1]
    await rig.container.callbacks.handle(
        CallbackReport(
            webhook_id=f"msg_{uuid.uuid4().hex}",
            event=CallbackEvent.FAILED,
            job_id=job.job_id,
            request_id=request_id,
            failure=Failure(FailureCategory.PLATFORM, "provider_down", "the provider is down"),
        )
    )
    await rig.recover()
    [request] = rig.requests_of(user)
    assert request.status is Status.FAILED
    if _refunding(rig):
        assert _operations(rig, request_id) == [("samples", "debit"), ("samples", "refund")]
        assert rig.emulator.balance(user) == 100
    else:
        assert _operations(rig, request_id) == [("samples", "debit")]
        assert rig.emulator.balance(user) == 96
    await rig.assert_invariants([user], {user: 100})


async def test_a_dispatched_job_past_its_deadline_is_refunded_as_the_toggle_says(
    rig: Rig,
) -> None:
    user = rig.new_user(balance=100)
    request_id = await submit(rig, user)
    await rig.recover()  # its clock is a day ahead: the samples deadline has passed
    [request] = rig.requests_of(user)
    assert request.status is Status.FAILED
    assert request.failure is not None and request.failure.code == "timeout"
    if _refunding(rig):
        assert rig.emulator.balance(user) == 100
        assert "refunded" in request.failure.message
    else:
        assert _operations(rig, request_id) == [("samples", "debit")]
        assert rig.emulator.balance(user) == 96
        assert "not refunded automatically" in request.failure.message
    # the debit that stands backs work that was dispatched: nothing to reconcile
    await rig.assert_invariants([user], {user: 100})


async def test_a_debit_whose_job_never_left_is_refunded_whatever_the_toggle(rig: Rig) -> None:
    user = rig.new_user(balance=100)
    with publishes_failing(rig), pytest.raises(DispatchUnavailable):
        await submit(rig, user)
    await rig.recover()
    [request] = rig.requests_of(user)
    assert request.status is Status.FAILED
    assert _operations(rig, request.id) == [("samples", "debit"), ("samples", "refund")]
    assert rig.emulator.balance(user) == 100
    await rig.assert_invariants([user], {user: 100})


async def test_a_debit_stuck_before_publishing_is_refunded_whatever_the_toggle(rig: Rig) -> None:
    from tests.faults.test_saga_faults import crash_submit

    user = rig.new_user(balance=100)
    await crash_submit(rig, user, "before_publish")
    await rig.recover()
    [request] = rig.requests_of(user)
    assert request.status is Status.FAILED
    assert rig.emulator.balance(user) == 100
    await rig.assert_invariants([user], {user: 100})

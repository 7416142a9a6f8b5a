"""A crash between a result's commit and its event's publish, on real PostgreSQL, RabbitMQ and
the Odoo emulator: the change stands, the event waits in the outbox, and recovery publishes it;
once when nothing was sent, and again with the same event id when the broker had confirmed it
before the crash (at least once, de-duplicated by consumers on the message id)."""

from __future__ import annotations

import json
import uuid
from importlib.resources import files

import jsonschema
import pytest

from creativeflow.domain.jobs import CallbackEvent, FailureCategory
from creativeflow.domain.model import Failure
from creativeflow.domain.states import Status
from creativeflow.services.callbacks import CallbackReport
from tests.faults.conftest import Rig, SimulatedCrash
from tests.faults.test_saga_faults import samples_arrive, settle_events, submit

pytestmark = pytest.mark.asyncio

VALIDATOR = jsonschema.Draft202012Validator(
    json.loads((files("creativeflow") / "schemas" / "generation-event.v1.json").read_text()),
    format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
)


async def fail_job(rig: Rig, request_id: str) -> None:
    job = rig.publisher.published[-1]
    await rig.container.callbacks.handle(
        CallbackReport(
            webhook_id=f"msg_{uuid.uuid4().hex}",
            event=CallbackEvent.FAILED,
            job_id=job.job_id,
            request_id=request_id,
            failure=Failure(FailureCategory.PLATFORM, "provider_timeout", "slow"),
        )
    )
    await settle_events(rig)


async def test_results_are_published_once_right_after_their_commit(rig: Rig) -> None:
    user = rig.new_user()
    request_id = await submit(rig, user)
    await samples_arrive(rig, request_id)
    [delivery] = rig.events_of(request_id)
    VALIDATOR.validate(delivery.json())
    assert delivery.properties.delivery_mode == 2
    assert delivery.properties.message_id == delivery.json()["event_id"]
    await rig.recover()
    assert len(rig.events_of(request_id)) == 1


@pytest.mark.parametrize("result", ["samples", "failure"])
async def test_a_crash_after_the_commit_before_the_publish_is_published_once_by_recovery(
    rig: Rig, result: str
) -> None:
    user = rig.new_user(balance=100)
    request_id = await submit(rig, user)
    rig.switch.point = "before_event_publish"
    with pytest.raises(SimulatedCrash):
        if result == "samples":
            await samples_arrive(rig, request_id)
        else:
            await fail_job(rig, request_id)
    assert rig.switch.fired == ["before_event_publish"]
    [request] = rig.requests_of(user)
    assert request.status is (
        Status.AWAITING_SELECTION if result == "samples" else Status.FAILED
    )  # the change committed before the crash
    assert rig.events_of(request_id) == []

    await rig.recover()  # two sweeps

    [delivery] = rig.events_of(request_id)
    body = delivery.json()
    VALIDATOR.validate(body)
    expected = "AIGenerationSamplesReady" if result == "samples" else "AIGenerationFailed"
    assert body["event_type"] == expected
    if result == "failure":
        assert body["refund"] == {"credits": 4, "actions": ["samples"]}
        assert rig.emulator.balance(user) == 100
    await rig.assert_invariants([user], {user: 100})


async def test_a_crash_after_the_confirm_before_the_commit_publishes_the_same_event_again(
    rig: Rig,
) -> None:
    user = rig.new_user()
    request_id = await submit(rig, user)
    rig.switch.point = "after_event_confirmed"
    with pytest.raises(SimulatedCrash):
        await samples_arrive(rig, request_id)
    [first] = rig.events_of(request_id)  # the broker had it before the process died

    await rig.recover()

    deliveries = rig.events_of(request_id)
    assert len(deliveries) == 2
    ids = {d.properties.message_id for d in deliveries}
    assert ids == {first.json()["event_id"]}  # one event: consumers keep the first
    assert deliveries[0].body == deliveries[1].body

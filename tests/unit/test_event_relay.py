"""The events exchange's relay on fakes: each result event is published once after its change
commits, in the documented message; a failed or crashed publish leaves it in the outbox, and
recovery publishes it, once."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from creativeflow.domain.errors import DispatchUnavailable
from creativeflow.domain.events import EVENT_SCHEMA, EventMessage, EventType, RequestEvent
from creativeflow.domain.jobs import CallbackEvent, FailureCategory
from creativeflow.domain.model import Failure, Sample
from creativeflow.services.callbacks import CallbackOutcome, CallbackReport
from tests.unit.test_use_cases import World

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "src/creativeflow/schemas/generation-event.v1.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(
    SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)
PROVIDER_DOWN = Failure(FailureCategory.PLATFORM, "provider_down", "the provider is down")


class Crash(BaseException):
    """The process died here (escapes every ``except Exception``)."""


def bodies(world: World, request_id: str) -> list[dict[str, Any]]:
    found = [json.loads(m.encode()) for m in world.event_publisher.of(request_id)]
    for body in found:
        VALIDATOR.validate(body)
    return found


def pending(world: World) -> list[RequestEvent]:
    return world.db.run_sync(lambda repo: repo.lock_pending_events(1000))


def test_the_published_event_schema_is_the_packaged_one() -> None:
    assert json.loads((ROOT / "docs/event-message.schema.json").read_text()) == SCHEMA
    assert SCHEMA["$id"] == EVENT_SCHEMA


@pytest.mark.asyncio
async def test_samples_final_and_failure_are_each_published_once_as_documented() -> None:
    world = World()
    request_id = await world.submit()
    assert world.event_publisher.published == []  # a submit that dispatched tells no result
    await world.samples_arrive(request_id)
    await world.generations.select("u-1", request_id, "s2")
    asset = Sample("final", "https://assets.test/final.png", 2048, 2048, "png")
    await world.callback(request_id, CallbackEvent.FINAL_READY, asset=asset)

    samples, final = bodies(world, request_id)
    assert [m.routing_key for m in world.event_publisher.of(request_id)] == [
        "generation.samples_ready",
        "generation.final_ready",
    ]
    assert (samples["event_type"], samples["status"]) == (
        "AIGenerationSamplesReady",
        "AWAITING_SELECTION",
    )
    assert [s["id"] for s in samples["samples"]] == ["s1", "s2"]
    assert (final["event_type"], final["status"]) == ("AIGenerationFinalAssetReady", "COMPLETED")
    assert final["final_asset"]["url"] == "https://assets.test/final.png"
    assert final["selected_sample_id"] == "s2"
    for body in (samples, final):
        assert body["event_id"] == f"{request_id}:{body['sequence']}"
        assert (body["request_id"], body["user_id"]) == (request_id, "u-1")
    assert samples["sequence"] < final["sequence"]
    assert pending(world) == []

    other = await world.submit()
    await world.callback(other, CallbackEvent.FAILED, failure=PROVIDER_DOWN)
    [failed] = bodies(world, other)
    assert (failed["event_type"], failed["status"]) == ("AIGenerationFailed", "FAILED")
    assert failed["failure"] == {
        "category": "platform",
        "code": "provider_down",
        "message": "the provider is down",
    }
    assert failed["refund"] == {"credits": 4, "actions": ["samples"]}
    assert len(world.event_publisher.published) == 3


@pytest.mark.asyncio
async def test_the_callback_is_answered_before_its_event_is_published() -> None:
    # the broker's confirm is not on the path of n8n's answer: the event goes out right after
    world = World()
    request_id = await world.submit()
    samples = (Sample("s1", "https://assets.test/1.png"),)
    job = world.publisher.jobs_for(request_id)[-1]
    outcome = await world.callbacks.handle(
        CallbackReport(
            webhook_id="msg_answered_first",
            event=CallbackEvent.SAMPLES_READY,
            job_id=job.job_id,
            request_id=request_id,
            samples=samples,
        )
    )
    assert outcome is CallbackOutcome.APPLIED
    assert world.event_publisher.published == []
    assert [e.type for e in pending(world)] == [EventType.SAMPLES_READY]
    await world.events.settle()
    assert world.event_publisher.types == ["AIGenerationSamplesReady"]
    assert pending(world) == []


@pytest.mark.asyncio
async def test_a_duplicate_callback_publishes_nothing_more() -> None:
    world = World()
    request_id = await world.submit()
    await world.samples_arrive(request_id)
    samples = (Sample("s9", "https://assets.test/9.png"),)
    await world.callback(request_id, CallbackEvent.SAMPLES_READY, samples=samples)
    assert world.event_publisher.types == ["AIGenerationSamplesReady"]


@pytest.mark.asyncio
async def test_a_content_rejection_is_a_failure_with_nothing_refunded() -> None:
    world = World()
    request_id = await world.submit()
    rejected = Failure(FailureCategory.CONTENT_POLICY, "content_rejected", "not allowed")
    await world.callback(request_id, CallbackEvent.FAILED, failure=rejected)
    [body] = bodies(world, request_id)
    assert (body["status"], body["failure"]["category"]) == ("CONTENT_REJECTED", "content_policy")
    assert body["refund"] is None


@pytest.mark.asyncio
async def test_no_prompt_or_brief_travels_with_an_event() -> None:
    world = World()
    request_id = await world.submit()
    prompt = world.db.request(request_id).prompt
    await world.samples_arrive(request_id)
    [message] = world.event_publisher.of(request_id)
    assert prompt.encode() not in message.encode()
    body = json.loads(message.encode())
    assert not {"prompt", "brief", "style_guidance", "brand_elements"} & body.keys()
    VALIDATOR.validate(body)
    assert not VALIDATOR.is_valid({**body, "prompt": prompt})  # no room for it either


@pytest.mark.asyncio
async def test_a_submit_that_fails_after_the_debit_publishes_its_failure_with_the_refund() -> None:
    world = World()
    world.publisher.fail_next()
    with pytest.raises(DispatchUnavailable):
        await world.submit()
    await world.events.settle()  # published after the answer
    [request] = world.db.requests()
    [body] = bodies(world, request.id)
    assert body["failure"]["code"] == "dispatch_unavailable"
    assert body["refund"] == {"credits": 4, "actions": ["samples"]}


@pytest.mark.asyncio
async def test_a_failed_publish_leaves_the_event_for_recovery_which_publishes_it_once() -> None:
    world = World()
    request_id = await world.submit()
    world.event_publisher.fail_next()
    await world.samples_arrive(request_id)  # the callback itself succeeds
    assert world.db.request(request_id).status.value == "AWAITING_SELECTION"
    assert world.event_publisher.published == []
    assert [e.type for e in pending(world)] == [EventType.SAMPLES_READY]

    report = await world.recovery.sweep()
    assert (report.events_published, report.events_failed) == (1, 0)
    [body] = bodies(world, request_id)
    assert body["event_type"] == "AIGenerationSamplesReady"
    assert pending(world) == []
    again = await world.recovery.sweep()
    assert again.events_published == 0
    assert len(world.event_publisher.published) == 1


@pytest.mark.asyncio
async def test_a_crash_after_the_commit_before_the_publish_is_published_once_by_recovery() -> None:
    world = World()
    request_id = await world.submit()

    crashed: list[str] = []

    def crash(message: EventMessage) -> None:
        crashed.append(message.event_id)
        raise Crash("the process died before publishing")

    real = world.event_publisher.publish
    world.event_publisher.publish = crash  # type: ignore[method-assign]
    # the publish runs after the callback's answer, and the process dies there
    with pytest.raises(Crash):
        await world.callback(request_id, CallbackEvent.FAILED, failure=PROVIDER_DOWN)
    world.event_publisher.publish = real  # type: ignore[method-assign]
    assert crashed and world.event_publisher.published == []
    assert world.db.request(request_id).status.value == "FAILED"  # committed before the crash

    await world.recovery.sweep()
    await world.recovery.sweep()
    [body] = bodies(world, request_id)
    assert body["event_type"] == "AIGenerationFailed"


@pytest.mark.asyncio
async def test_after_a_failure_callbacks_leave_events_to_the_sweep_for_a_while() -> None:
    world = World()
    first, second = await world.submit(), await world.submit()
    world.event_publisher.fail_next()
    await world.samples_arrive(first)
    attempts = world.event_publisher.attempts
    await world.samples_arrive(second)  # the broker just failed: not tried again at once
    assert world.event_publisher.attempts == attempts
    world.clock.advance(timedelta(seconds=31))
    third = await world.submit()
    await world.samples_arrive(third)
    assert [m.event.request_id for m in world.event_publisher.published] == [third]
    await world.recovery.sweep()
    assert {m.event.request_id for m in world.event_publisher.published} == {
        first,
        second,
        third,
    }


@pytest.mark.asyncio
async def test_the_sweep_publishes_every_pending_event_oldest_first_past_one_batch() -> None:
    world = World()  # the relay's batch is 3
    requests = [await world.submit() for _ in range(7)]
    world.event_publisher.fail_next()
    await world.samples_arrive(requests[0])  # pauses the relays after commits
    for request_id in requests[1:]:
        await world.samples_arrive(request_id)
    assert len(pending(world)) == 7

    report = await world.recovery.sweep()
    assert report.events_published == 7
    sequences = [m.sequence for m in world.event_publisher.published]
    assert sequences == sorted(sequences)
    assert [m.event.request_id for m in world.event_publisher.published] == requests


@pytest.mark.asyncio
async def test_a_sweep_stops_at_a_failed_publish_and_keeps_a_requests_order() -> None:
    world = World()
    request_id = await world.submit()
    world.event_publisher.fail_next()
    await world.callback(request_id, CallbackEvent.FAILED, failure=PROVIDER_DOWN)
    other = await world.submit()
    await world.samples_arrive(other)  # paused: pending too
    world.event_publisher.fail_next()
    report = await world.recovery.sweep()
    assert (report.events_published, report.events_failed) == (0, 1)
    assert any("_publish_events" in error for error in report.errors)
    assert len(pending(world)) == 2
    await world.recovery.sweep()
    assert [m.event.request_id for m in world.event_publisher.published] == [request_id, other]


@pytest.mark.asyncio
async def test_a_request_failed_by_its_deadline_is_published_in_the_same_sweep() -> None:
    world = World()
    request_id = await world.submit()
    world.clock.advance(timedelta(days=1))
    report = await world.recovery.sweep()
    assert (report.requests_timed_out, report.events_published) == (1, 1)
    [body] = bodies(world, request_id)
    assert (body["event_type"], body["failure"]["code"]) == ("AIGenerationFailed", "timeout")
    assert body["refund"] == {"credits": 4, "actions": ["samples"]}


def test_only_a_stored_result_event_makes_a_message() -> None:
    at = datetime(2026, 12, 4, tzinfo=UTC)
    unstored = RequestEvent("r-1", "u-1", EventType.SAMPLES_READY, at, "c-1", {"samples": []})
    with pytest.raises(ValueError, match="stored"):
        EventMessage(unstored)
    status = RequestEvent("r-1", "u-1", EventType.STATUS_CHANGED, at, "c-1", {}, id=4)
    with pytest.raises(ValueError, match="not published"):
        EventMessage(status)

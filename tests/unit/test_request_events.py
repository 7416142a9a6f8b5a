"""What a request's watchers are told: every status it moved to, its results and each credit
movement, written with the change that caused them and numbered in order; nothing for a change
that did not happen (a duplicate, a replay, a refused step)."""

from __future__ import annotations

import pytest

from creativeflow.domain.errors import CreditsRefused
from creativeflow.domain.events import EventType
from creativeflow.domain.jobs import CallbackEvent, FailureCategory
from creativeflow.domain.model import Failure, Sample
from tests.unit.test_use_cases import World

pytestmark = pytest.mark.asyncio


def kinds(world: World, request_id: str) -> list[str]:
    return [
        f"{e.type}:{e.data['status']}" if e.type is EventType.STATUS_CHANGED else str(e.type)
        for e in world.db.events(request_id)
    ]


async def test_a_submit_tells_each_status_and_the_charge_in_order() -> None:
    world = World()
    request_id = await world.submit()
    assert kinds(world, request_id) == [
        "status_changed:PENDING",
        "status_changed:VALIDATING_CREDITS",
        "credits_charged",
        "status_changed:PUBLISHING_TO_QUEUE",
        "status_changed:PROCESSING_SAMPLES",
    ]
    events = world.db.events(request_id)
    ids = [e.id for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    charged = next(e for e in events if e.type is EventType.CREDITS_CHARGED)
    assert charged.data == {"action": "samples", "amount": 4}
    assert {e.user_id for e in events} == {"u-1"}


async def test_samples_then_final_tell_their_results_once() -> None:
    world = World()
    request_id = await world.submit()
    await world.samples_arrive(request_id)
    samples = world.db.events(request_id)[-1]
    assert samples.type is EventType.SAMPLES_READY
    assert [s["id"] for s in samples.data["samples"]] == ["s1", "s2"]
    assert samples.type.is_published
    await world.generations.select("u-1", request_id, "s1")
    asset = Sample("final", "https://assets.test/final.png", 2048, 2048, "png")
    await world.callback(request_id, CallbackEvent.FINAL_READY, asset=asset)
    final = world.db.events(request_id)[-1]
    assert final.type is EventType.FINAL_READY
    assert final.data["asset"]["url"] == "https://assets.test/final.png"
    assert final.data["selected_sample_id"] == "s1"
    assert kinds(world, request_id).count("final_ready") == 1


async def test_a_duplicate_or_replayed_callback_tells_nothing_more() -> None:
    world = World()
    request_id = await world.submit()
    await world.samples_arrive(request_id)
    before = kinds(world, request_id)
    samples = (Sample("s9", "https://assets.test/9.png"),)
    await world.callback(request_id, CallbackEvent.SAMPLES_READY, samples=samples)
    assert kinds(world, request_id) == before


async def test_a_platform_failure_tells_the_failure_then_the_refund() -> None:
    world = World()
    request_id = await world.submit()
    failure = Failure(FailureCategory.PLATFORM, "provider_down", "the provider is down")
    await world.callback(request_id, CallbackEvent.FAILED, failure=failure)
    assert kinds(world, request_id)[-3:] == ["status_changed:FAILED", "failed", "credits_refunded"]
    failed, refunded = world.db.events(request_id)[-2:]
    assert failed.data == {
        "status": "FAILED",
        "category": "platform",
        "code": "provider_down",
        "message": "the provider is down",
        "refund": {"credits": 4, "actions": ["samples"]},
    }
    assert refunded.data == {"action": "samples", "amount": 4}
    assert not refunded.type.is_published


async def test_a_refused_submit_tells_the_refusal_and_no_charge() -> None:
    world = World()
    with pytest.raises(CreditsRefused):
        await world.submit(samples=40)
    (request,) = world.db.requests()
    assert kinds(world, request.id) == [
        "status_changed:PENDING",
        "status_changed:VALIDATING_CREDITS",
        "status_changed:REFUSED",
    ]

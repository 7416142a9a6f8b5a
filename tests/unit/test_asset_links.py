"""Our stored copies in what users are sent as it happens, on fakes of every port: a stored copy
adds an ``asset_stored`` event (never published on the events exchange), and the live streams
and the clients' webhooks send the events that name assets with the links the view gives, made
when they are sent. The e2e tier proves the same on PostgreSQL, a real S3 server and HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from creativeflow.api.sse import frame_event
from creativeflow.domain.assets import AssetRole, CopyStatus
from creativeflow.domain.events import EventType, RequestEvent
from creativeflow.services.client_webhooks import ClientWebhookConfig, ClientWebhookDelivery
from creativeflow.services.live_events import KeepAlive, LiveEvents, StreamLimits
from creativeflow.services.outbox import EventRelay
from tests.unit.test_assets import FINAL_URL, SAMPLE_URLS, AssetWorld
from tests.unit.test_client_webhooks import HOOK, Receiver
from tests.unit.test_live_events import drain_to_end
from tests.unit.test_use_cases import A_SUBMIT, USER

pytestmark = pytest.mark.asyncio

LIMITS = StreamLimits(keepalive_seconds=0.01)


def live(world: AssetWorld, limits: StreamLimits = LIMITS) -> LiveEvents:
    return LiveEvents(world.db, limits, assets=world.keeper, clock=world.clock)


def of_type(events: list[RequestEvent], kind: EventType) -> list[RequestEvent]:
    return [e for e in events if e.type is kind]


async def until(
    items: AsyncIterator[RequestEvent | KeepAlive],
    enough: Callable[[list[RequestEvent]], bool],
) -> list[RequestEvent]:
    """The events a stream hands out until ``enough`` of them came (at most 5 s)."""

    async def take() -> list[RequestEvent]:
        got: list[RequestEvent] = []
        while not enough(got):
            item = await items.__anext__()
            if isinstance(item, RequestEvent):
                got.append(item)
        return got

    return await asyncio.wait_for(take(), 5)


def key_of(world: AssetWorld, request_id: str, role: AssetRole, asset_id: str) -> str:
    [asset] = [
        a for a in world.db.stored_assets(request_id) if a.role is role and a.asset_id == asset_id
    ]
    return asset.storage_key


def storage_link(world: AssetWorld, key: str) -> str:
    return world.storage.presign_get(key, world.keeper.config.url_ttl)


async def final_copy_fails_once(world: AssetWorld, request_id: str) -> None:
    """The final asset arrives while the storage is away: its copy is left pending, for the
    sweep to retry."""
    world.storage.down = True
    await world.final_arrives(request_id)
    await world.keeper.aclose()
    world.storage.down = False
    [final] = [a for a in world.db.stored_assets(request_id) if a.role is AssetRole.FINAL]
    assert final.status is CopyStatus.PENDING


async def test_each_stored_copy_adds_an_asset_stored_event_that_is_never_published() -> None:
    world = AssetWorld()
    request_id = await world.submit()
    await world.samples_arrive(request_id)
    assert of_type(world.db.events(request_id), EventType.ASSET_STORED) == []
    await world.keeper.aclose()
    await world.final_arrives(request_id)
    await world.keeper.aclose()

    stored = of_type(world.db.events(request_id), EventType.ASSET_STORED)
    assert [e.data for e in stored] == [
        {"role": "sample", "asset": {"id": "s1", "url": SAMPLE_URLS[0]}},
        {"role": "sample", "asset": {"id": "s2", "url": SAMPLE_URLS[1]}},
        {"role": "final", "asset": {"id": "final-1", "url": FINAL_URL}},
    ]
    assert {e.correlation_id for e in stored} == {world.db.request(request_id).correlation_id}
    assert not EventType.ASSET_STORED.is_published
    # the outbox has nothing of them: the exchange gets the result events only
    relay = EventRelay(world.db, world.event_publisher, world.clock)
    await relay.publish_batch()
    assert world.event_publisher.types == [
        "AIGenerationSamplesReady",
        "AIGenerationFinalAssetReady",
    ]


async def test_a_failed_attempt_adds_no_event() -> None:
    world = AssetWorld()
    world.storage.down = True
    request_id = await world.submit()
    await world.samples_arrive(request_id)
    await world.keeper.aclose()
    assert {a.status for a in world.db.stored_assets(request_id)} == {CopyStatus.PENDING}
    assert of_type(world.db.events(request_id), EventType.ASSET_STORED) == []


async def test_a_resumed_stream_replays_samples_ready_with_links_to_our_copies() -> None:
    world = AssetWorld()
    request_id = await world.submit()
    await world.samples_arrive(request_id)
    hub = live(world)
    # before the copy: the provider's URLs, said to be so
    early = await hub.open(USER, request_id, 0)
    assert early is not None
    items = early.items()
    got = await until(items, lambda got: bool(of_type(got, EventType.SAMPLES_READY)))
    [before] = of_type(got, EventType.SAMPLES_READY)
    assert [(s["url"], s["url_source"]) for s in before.data["samples"]] == [
        (SAMPLE_URLS[0], "provider"),
        (SAMPLE_URLS[1], "provider"),
    ]
    # the copies are stored: the open stream gets an asset_stored event for each, linked
    await world.keeper.aclose()
    later = await until(items, lambda later: len(later) == 2)
    await items.aclose()
    assert [e.type for e in later] == [EventType.ASSET_STORED] * 2
    first = later[0]
    assert first.data["role"] == "sample"
    assert first.data["asset"]["id"] == "s1"
    assert first.data["asset"]["url_source"] == "storage"
    assert first.data["asset"]["url"] == storage_link(
        world, key_of(world, request_id, AssetRole.SAMPLE, "s1")
    )
    # a stream resumed from the start replays samples_ready with our links, made now
    world.clock.advance(timedelta(minutes=40))
    resumed = await hub.open(USER, request_id, 0)
    assert resumed is not None
    items = resumed.items()
    replayed = await until(items, lambda got: len(of_type(got, EventType.ASSET_STORED)) == 2)
    await items.aclose()
    [again] = of_type(replayed, EventType.SAMPLES_READY)
    samples = again.data["samples"]
    assert [s["url_source"] for s in samples] == ["storage", "storage"]
    assert samples[1]["url"] == storage_link(
        world, key_of(world, request_id, AssetRole.SAMPLE, "s2")
    )
    expires = world.clock.now() + world.keeper.config.url_ttl
    assert samples[0]["url_expires_at"] == expires.isoformat()
    assert samples[0]["checksum_sha256"] is not None
    # the frame carries the links; the journal keeps the provider's URLs as reported
    frame = json.loads(frame_event(again).decode().split("data: ", 1)[1].split("\n", 1)[0])
    assert frame["data"]["samples"][0]["url_source"] == "storage"
    [journal] = of_type(world.db.events(request_id), EventType.SAMPLES_READY)
    assert [s["url"] for s in journal.data["samples"]] == list(SAMPLE_URLS)
    assert "url_source" not in journal.data["samples"][0]


async def test_a_stream_followed_to_the_end_waits_for_the_final_copy_and_gets_our_link() -> None:
    world = AssetWorld()
    request_id = await world.submit()
    await world.samples_arrive(request_id)
    await world.keeper.aclose()
    # the final asset's callback; its first copy fails (storage away), the sweep retries it
    hub = live(world)
    stream = await hub.open(USER, request_id, world.db.events(request_id)[-1].id or 0)
    assert stream is not None
    following = asyncio.ensure_future(drain_to_end(stream.items()))
    await final_copy_fails_once(world, request_id)
    await asyncio.sleep(0.05)
    assert not following.done(), "completed, but the final copy is pending: the stream waits"
    world.clock.advance(timedelta(seconds=30))  # the copy's retry is due
    await world.keeper.copy_due(10)
    hub.wake(request_id)
    rest = await asyncio.wait_for(following, 5)
    assert [e.type for e in rest][-1] is EventType.ASSET_STORED
    [final_ready] = of_type(rest, EventType.FINAL_READY)
    assert final_ready.data["asset"]["url_source"] == "provider"
    last = rest[-1].data
    assert last["role"] == "final"
    assert last["asset"]["url_source"] == "storage"
    assert last["asset"]["url"] == storage_link(
        world, key_of(world, request_id, AssetRole.FINAL, "final-1")
    )
    assert hub.open_streams == 0


async def test_a_final_copy_taking_longer_than_the_wait_ends_the_stream_without_it() -> None:
    world = AssetWorld()
    request_id = await world.submit()
    await world.samples_arrive(request_id)
    await world.keeper.aclose()
    await final_copy_fails_once(world, request_id)
    hub = live(world, StreamLimits(keepalive_seconds=0.01, final_copy_wait_seconds=60))
    stream = await hub.open(USER, request_id, 0)
    assert stream is not None
    following = asyncio.ensure_future(drain_to_end(stream.items()))
    await asyncio.sleep(0.05)
    assert not following.done()
    world.clock.advance(timedelta(seconds=61))
    rest = await asyncio.wait_for(following, 5)
    assert rest[-1].type is EventType.FINAL_READY
    # and a stream opened after that is not opened at all (nothing follows its cursor)
    assert await hub.open(USER, request_id, rest[-1].id or 0) is None


async def test_the_webhook_body_gives_our_links_once_stored() -> None:
    world = AssetWorld()
    receiver = Receiver()
    hooks = ClientWebhookDelivery(
        world.db, receiver, world.clock, ClientWebhookConfig(batch=50), assets=world.keeper
    )
    command = replace(A_SUBMIT, webhook_url=HOOK)
    request_id = (await world.generations.submit(USER, command, "c-1")).id
    await world.samples_arrive(request_id)
    await hooks.deliver_due()
    posted = [body for _, _, body in receiver.accepted]
    [early] = [b for b in posted if b["type"] == "samples_ready"]
    assert {s["url_source"] for s in early["data"]["samples"]} == {"provider"}

    await world.keeper.aclose()
    await world.final_arrives(request_id)
    await world.keeper.aclose()
    await hooks.deliver_due()
    posted = [body for _, _, body in receiver.accepted]
    stored: list[dict[str, Any]] = [b for b in posted if b["type"] == "asset_stored"]
    assert [(b["data"]["role"], b["data"]["asset"]["id"]) for b in stored] == [
        ("sample", "s1"),
        ("sample", "s2"),
        ("final", "final-1"),
    ]
    final = stored[-1]["data"]["asset"]
    assert final["url_source"] == "storage"
    assert final["url"] == storage_link(
        world, key_of(world, request_id, AssetRole.FINAL, "final-1")
    )
    assert final["url_expires_at"] is not None
    [final_ready] = [b for b in posted if b["type"] == "final_ready"]
    assert final_ready["data"]["asset"]["url_source"] == "storage", "posted after the copy"

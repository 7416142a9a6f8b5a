"""The live event streams on fakes of the ports: what a stream hands out and when it ends, the
cursor, the limits, wake-ups and draining; and the wire form (``text/event-stream``) the API
writes them in."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest
from fastapi.exceptions import RequestValidationError

from creativeflow.adapters.odoo.errors import OdooUnavailable
from creativeflow.api.sse import (
    KEEP_ALIVE_FRAME,
    event_stream_body,
    frame_event,
    frame_retry,
    parse_cursor,
)
from creativeflow.domain.errors import (
    EventStreamsBusy,
    InvalidEventCursor,
    NotFound,
    TooManyEventStreams,
)
from creativeflow.domain.events import EventType, RequestEvent
from creativeflow.domain.jobs import CallbackEvent, FailureCategory
from creativeflow.domain.model import Failure
from creativeflow.services.live_events import (
    KEEP_ALIVE,
    EventStream,
    KeepAlive,
    LiveEvents,
    StreamLimits,
)
from creativeflow.services.ports import Tracking
from tests.unit.fakes import InMemoryTracking
from tests.unit.test_use_cases import A_SUBMIT, USER, World

T = TypeVar("T")
LIMITS = StreamLimits(max_streams=3, max_streams_per_user=2, keepalive_seconds=0.01)


def ids(world: World, request_id: str) -> list[int]:
    return [e.id or 0 for e in world.db.events(request_id)]


async def take(stream: EventStream, count: int) -> list[RequestEvent | KeepAlive]:
    got: list[RequestEvent | KeepAlive] = []
    async for item in stream.items():
        got.append(item)
        if len(got) == count:
            break
    return got


async def drain_to_end(items: AsyncIterator[RequestEvent | KeepAlive]) -> list[RequestEvent]:
    return [item async for item in items if isinstance(item, RequestEvent)]


# --- the wire form ---------------------------------------------------------------------------


def an_event(**data: object) -> RequestEvent:
    return RequestEvent(
        request_id="r-1",
        user_id=USER,
        type=EventType.FAILED,
        at=datetime(2026, 12, 4, 18, 0, tzinfo=UTC),
        correlation_id="c-1",
        data=dict(data),
        id=42,
    )


def test_an_event_is_one_block_with_its_type_one_line_of_json_and_its_id() -> None:
    frame = frame_event(an_event(message="line one\nline two\r\nend", status="FAILED"))
    text = frame.decode()
    assert text.endswith("\n\n") and text.count("\n\n") == 1
    lines = text[:-2].split("\n")
    assert lines[0] == "event: failed"
    assert lines[-1] == "id: 42"
    assert len([line for line in lines if line.startswith("data: ")]) == 1
    data = json.loads(lines[1].removeprefix("data: "))
    assert data == {
        "id": 42,
        "type": "failed",
        "request_id": "r-1",
        "at": "2026-12-04T18:00:00+00:00",
        "data": {"message": "line one\nline two\r\nend", "status": "FAILED"},
    }


def test_the_retry_hint_and_the_keep_alive_are_blocks_no_client_takes_for_an_event() -> None:
    assert frame_retry(3000) == b"retry: 3000\n\n"
    assert KEEP_ALIVE_FRAME == b": keep-alive\n\n"


@pytest.mark.parametrize(
    ("header", "query", "cursor"),
    [
        (None, None, 0),
        ("", None, 0),
        ("0", None, 0),
        ("17", None, 17),
        (None, "9", 9),
        ("17", "9", 17),  # what an EventSource sends on reconnecting wins over its first URL
        ("", "9", 9),
        ("9" * 18, None, int("9" * 18)),
    ],
)
def test_the_cursor_is_the_header_else_the_query_else_the_start(
    header: str | None, query: str | None, cursor: int
) -> None:
    assert parse_cursor(header, query) == cursor


@pytest.mark.parametrize("bad", ["abc", "-1", "+1", "1.0", "1e3", "9" * 19, "٣", "1 ", "0x1"])
def test_a_cursor_that_is_not_1_to_18_digits_is_refused(bad: str) -> None:
    with pytest.raises(RequestValidationError) as refused:
        parse_cursor(bad, None)
    assert refused.value.errors()[0]["loc"] == ("header", "Last-Event-ID")
    with pytest.raises(RequestValidationError) as refused:
        parse_cursor(None, bad)
    assert refused.value.errors()[0]["loc"] == ("query", "last_event_id")


# --- what a stream hands out ------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_stream_gives_every_event_after_the_cursor_in_order() -> None:
    world = World()
    request_id = await world.submit()
    live = LiveEvents(world.db, LIMITS)
    everything = ids(world, request_id)
    stream = await live.open(USER, request_id, everything[1])
    assert stream is not None
    got = await take(stream, len(everything) - 2)
    assert [e.id for e in got if isinstance(e, RequestEvent)] == everything[2:]
    stream.close()
    assert live.open_streams == 0


@pytest.mark.asyncio
async def test_a_wake_up_hands_out_what_was_committed_since() -> None:
    world = World()
    request_id = await world.submit()
    live = LiveEvents(world.db, StreamLimits(keepalive_seconds=60))
    stream = await live.open(USER, request_id, ids(world, request_id)[-1])
    assert stream is not None
    items = stream.items()
    waiting = asyncio.ensure_future(items.__anext__())
    await asyncio.sleep(0)
    assert not waiting.done()
    await world.samples_arrive(request_id)
    live.wake("another-request")
    await asyncio.sleep(0.01)
    assert not waiting.done(), "only a wake-up of this request reads again"
    live.wake(request_id)
    first = await asyncio.wait_for(waiting, 1)
    assert isinstance(first, RequestEvent) and first.type is EventType.STATUS_CHANGED
    await items.aclose()
    assert live.open_streams == 0


@pytest.mark.asyncio
async def test_with_no_wake_up_the_keep_alive_reads_again_and_loses_nothing() -> None:
    world = World()
    request_id = await world.submit()
    live = LiveEvents(world.db, LIMITS)
    stream = await live.open(USER, request_id, ids(world, request_id)[-1])
    assert stream is not None
    items = stream.items()
    assert await items.__anext__() is KEEP_ALIVE
    await world.samples_arrive(request_id)  # no wake-up: the listener missed it
    following = [await items.__anext__() for _ in range(2)]
    assert [e.type for e in following if isinstance(e, RequestEvent)] == [
        EventType.STATUS_CHANGED,
        EventType.SAMPLES_READY,
    ]
    await items.aclose()


@pytest.mark.asyncio
async def test_a_stream_stays_open_while_a_refund_is_unsettled_and_ends_after_it() -> None:
    world = World()
    request_id = await world.submit()
    world.credits.fail_next("refund", OdooUnavailable("down"))
    platform = Failure(FailureCategory.PLATFORM, "provider_down", "the provider is down")
    await world.callback(request_id, CallbackEvent.FAILED, failure=platform)
    live = LiveEvents(world.db, LIMITS)
    stream = await live.open(USER, request_id, 0)
    assert stream is not None
    items = stream.items()
    before = [await items.__anext__() for _ in range(len(ids(world, request_id)) + 1)]
    assert before[-1] is KEEP_ALIVE, "FAILED, but the refund may still come: the stream waits"
    world.clock.advance(timedelta(minutes=5))
    assert (await world.recovery.sweep()).refunds_applied == 1
    rest = await asyncio.wait_for(drain_to_end(items), 5)
    assert [e.type for e in rest] == [EventType.CREDITS_REFUNDED]
    assert [e.id for e in before if isinstance(e, RequestEvent)] + [rest[0].id] == ids(
        world, request_id
    )
    assert live.open_streams == 0


@pytest.mark.asyncio
async def test_an_ended_request_with_nothing_after_the_cursor_opens_no_stream() -> None:
    world = World()
    request_id = await world.submit()
    await world.generations.cancel(USER, request_id)
    live = LiveEvents(world.db, LIMITS)
    assert await live.open(USER, request_id, ids(world, request_id)[-1]) is None
    tail = await live.open(USER, request_id, ids(world, request_id)[-2])
    assert tail is not None
    assert [e.id for e in await drain_to_end(tail.items())] == ids(world, request_id)[-1:]
    assert live.open_streams == 0


# --- who may watch, the cursor and the limits -------------------------------------------------


@pytest.mark.asyncio
async def test_another_users_request_and_a_foreign_cursor_are_refused() -> None:
    world = World()
    request_id = await world.submit()
    other = await world.submit()
    live = LiveEvents(world.db, LIMITS)
    with pytest.raises(NotFound):
        await live.open("someone-else", request_id, 0)
    with pytest.raises(NotFound):
        await live.open(USER, "no-such-request", 0)
    with pytest.raises(InvalidEventCursor):
        await live.open(USER, request_id, ids(world, other)[0])
    with pytest.raises(InvalidEventCursor):
        await live.open(USER, request_id, 10_000)
    assert live.open_streams == 0


@pytest.mark.asyncio
async def test_streams_past_a_users_limit_or_the_processs_are_refused_until_one_closes() -> None:
    world = World()
    request_id = await world.submit()
    world.credits.add_account("u-2", tier="pro", balance=100)
    theirs = (await world.generations.submit("u-2", A_SUBMIT, "c-2")).id
    live = LiveEvents(world.db, LIMITS)
    a = await live.open(USER, request_id, 0)
    b = await live.open(USER, request_id, 0)
    with pytest.raises(TooManyEventStreams) as per_user:
        await live.open(USER, request_id, 0)
    assert per_user.value.status_code == 429
    assert per_user.value.retry_after == LIMITS.retry_after_seconds
    assert a is not None and b is not None
    a.close()
    a.close()  # closing twice gives one place back, once
    assert live.open_streams == 1
    c = await live.open(USER, request_id, 0)
    d = await live.open("u-2", theirs, 0)
    assert c is not None and d is not None and live.open_streams == LIMITS.max_streams
    with pytest.raises(EventStreamsBusy) as busy:
        await live.open("u-2", theirs, 0)
    assert busy.value.status_code == 503
    assert busy.value.retry_after == LIMITS.retry_after_seconds
    for stream in (b, c, d):
        stream.close()
    assert live.open_streams == 0


@pytest.mark.asyncio
async def test_draining_ends_open_streams_and_refuses_new_ones() -> None:
    world = World()
    request_id = await world.submit()
    live = LiveEvents(world.db, StreamLimits(keepalive_seconds=60))
    stream = await live.open(USER, request_id, ids(world, request_id)[-1])
    assert stream is not None
    following = asyncio.ensure_future(drain_to_end(stream.items()))
    await asyncio.sleep(0.01)
    live.drain()
    assert await asyncio.wait_for(following, 1) == []
    assert live.open_streams == 0
    with pytest.raises(EventStreamsBusy):
        await live.open(USER, request_id, 0)


@pytest.mark.asyncio
async def test_a_stream_ends_at_its_lifetime() -> None:
    world = World()
    request_id = await world.submit()
    live = LiveEvents(world.db, StreamLimits(keepalive_seconds=60, max_lifetime_seconds=0.05))
    stream = await live.open(USER, request_id, ids(world, request_id)[-1])
    assert stream is not None
    assert await asyncio.wait_for(drain_to_end(stream.items()), 2) == []
    assert live.open_streams == 0


@pytest.mark.asyncio
async def test_the_body_starts_with_the_retry_hint_and_frames_every_event() -> None:
    world = World()
    request_id = await world.submit()
    await world.generations.cancel(USER, request_id)
    live = LiveEvents(world.db, LIMITS)
    stream = await live.open(USER, request_id, 0)
    assert stream is not None
    body = [chunk async for chunk in event_stream_body(stream, 2500)]
    assert body[0] == b"retry: 2500\n\n"
    assert body[1:] == [frame_event(e) for e in world.db.events(request_id)]
    assert live.open_streams == 0


class FailingReads:
    """The tracking store, failing every transaction from the moment it is told to."""

    def __init__(self, inner: InMemoryTracking) -> None:
        self.inner = inner
        self.failing = False

    async def run(self, work: Callable[[Tracking], T]) -> T:
        if self.failing:
            raise ConnectionError("the database went away")
        return await self.inner.run(work)

    def run_sync(self, work: Callable[[Tracking], T]) -> T:
        return self.inner.run_sync(work)

    async def ping(self) -> bool:
        return not self.failing

    async def aclose(self) -> None:
        return None


@pytest.mark.asyncio
async def test_a_stream_whose_reads_fail_ends_and_gives_its_place_back() -> None:
    world = World()
    request_id = await world.submit()
    store = FailingReads(world.db)
    live = LiveEvents(store, LIMITS)
    stream = await live.open(USER, request_id, 0)
    assert stream is not None
    store.failing = True
    got = await asyncio.wait_for(drain_to_end(stream.items()), 2)
    assert [e.id for e in got] == ids(world, request_id)  # what the first read had
    assert live.open_streams == 0

"""The events exchange against a real broker: its topology, confirmed persistent messages in the
documented schema, routing keys, the unrouted queue, failures; and the relay on a real
PostgreSQL and RabbitMQ, where two relays running at once never publish an event twice."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from typing import Any

import jsonschema
import pytest
from pika.exceptions import ChannelClosedByBroker

from creativeflow.adapters.rabbitmq import (
    BrokerUnreachable,
    JobUnroutable,
    RabbitConfig,
    TopologyError,
)
from creativeflow.adapters.rabbitmq.events import EventsConfig, PikaEventPublisher
from creativeflow.adapters.tracking.database import DatabaseConfig, TrackingDatabase
from creativeflow.adapters.tracking.migrate import upgrade
from creativeflow.clock import SystemClock
from creativeflow.domain.events import EVENT_SCHEMA, EventMessage, EventType, RequestEvent
from creativeflow.domain.model import GenerationRequest
from creativeflow.domain.states import Status
from creativeflow.services.outbox import EventRelay
from tests.conftest import create_database, drop_database
from tests.integration.rabbit_support import (
    broker_connections,
    channel,
    close_broker_connections,
    drain,
    get_message,
    rabbitmqctl_available,
    unique_config,
    wait_until,
)

SCHEMA = json.loads((files("creativeflow") / "schemas" / "generation-event.v1.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(
    SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)
AT = datetime(2026, 12, 4, 18, 0, tzinfo=UTC)


@pytest.fixture
def rabbit() -> RabbitConfig:
    return unique_config()


@pytest.fixture
def events(rabbit: RabbitConfig) -> Iterator[EventsConfig]:
    tag = uuid.uuid4().hex[:12]
    config = EventsConfig(
        exchange=f"test.{tag}.events",
        unrouted_exchange=f"test.{tag}.events.unrouted",
        unrouted_queue=f"test.{tag}.events.unrouted",
    )
    yield config
    with channel() as ch:
        ch.queue_delete(config.unrouted_queue)
        ch.exchange_delete(config.exchange)
        ch.exchange_delete(config.unrouted_exchange)


@pytest.fixture
def publisher(rabbit: RabbitConfig, events: EventsConfig) -> Iterator[PikaEventPublisher]:
    publisher = PikaEventPublisher(rabbit, events)
    publisher.declare_topology()
    yield publisher
    publisher.close()


@pytest.fixture
def consumer(events: EventsConfig) -> Iterator[str]:
    """A consumer's queue, bound to every event."""
    queue = f"{events.exchange}.consumer"
    with channel() as ch:
        ch.queue_declare(queue, durable=True)
        ch.queue_bind(queue, events.exchange, routing_key="generation.#")
    yield queue
    with channel() as ch:
        ch.queue_delete(queue)


def a_message(kind: EventType = EventType.SAMPLES_READY, sequence: int = 7) -> EventMessage:
    data: dict[str, Any] = {
        EventType.SAMPLES_READY: {"samples": [{"id": "s1", "url": "https://assets.test/1.png"}]},
        EventType.FINAL_READY: {
            "asset": {"id": "f", "url": "https://assets.test/f.png"},
            "selected_sample_id": "s1",
        },
        EventType.FAILED: {
            "status": "FAILED",
            "category": "platform",
            "code": "timeout",
            "message": "No result arrived in time.",
            "refund": {"credits": 4, "actions": ["samples"]},
        },
    }[kind]
    event = RequestEvent(str(uuid.uuid4()), "u-1", kind, AT, "corr-1", data, id=sequence)
    return EventMessage(event)


def test_a_bound_queue_receives_a_confirmed_persistent_event_in_the_schema(
    publisher: PikaEventPublisher, consumer: str
) -> None:
    message = a_message()
    publisher.publish(message)  # returns once the broker confirmed

    received = get_message(consumer)
    assert received is not None
    properties = received.properties
    assert properties.delivery_mode == 2
    assert properties.message_id == message.event_id == f"{message.event.request_id}:7"
    assert (properties.type, properties.content_type) == (
        "AIGenerationSamplesReady",
        "application/json",
    )
    assert properties.correlation_id == "corr-1"
    assert properties.headers["schema"] == EVENT_SCHEMA
    assert received.method.routing_key == "generation.samples_ready"
    body = received.json()
    VALIDATOR.validate(body)
    assert body["event_id"] == message.event_id
    assert body["samples"] == [{"id": "s1", "url": "https://assets.test/1.png"}]


def test_each_event_type_has_its_routing_key_and_unwanted_ones_wait_unrouted(
    publisher: PikaEventPublisher, events: EventsConfig
) -> None:
    failures = f"{events.exchange}.failures"
    with channel() as ch:
        ch.queue_declare(failures, durable=True)
        ch.queue_bind(failures, events.exchange, routing_key="generation.failed")
    try:
        for kind in (EventType.SAMPLES_READY, EventType.FINAL_READY, EventType.FAILED):
            publisher.publish(a_message(kind))
        [failed] = drain(failures)
        assert failed.json()["event_type"] == "AIGenerationFailed"
        VALIDATOR.validate(failed.json())
        unrouted = drain(events.unrouted_queue)
        assert [m.json()["event_type"] for m in unrouted] == [
            "AIGenerationSamplesReady",
            "AIGenerationFinalAssetReady",
        ]
        assert all(m.properties.delivery_mode == 2 for m in unrouted)
    finally:
        with channel() as ch:
            ch.queue_delete(failures)


def test_an_event_nothing_can_take_is_a_failed_publish(
    publisher: PikaEventPublisher, events: EventsConfig
) -> None:
    with channel() as ch:
        ch.queue_delete(events.unrouted_queue)
    with pytest.raises(JobUnroutable):
        publisher.publish(a_message())
    publisher.declare_topology()  # the queue is back; the same publisher goes on
    publisher.publish(a_message())
    assert len(drain(events.unrouted_queue)) == 1


def test_the_events_exchange_is_durable_with_its_alternate_exchange(
    publisher: PikaEventPublisher, events: EventsConfig
) -> None:
    for arguments, durable in (
        ({}, True),
        ({"alternate-exchange": events.unrouted_exchange}, False),
    ):
        with pytest.raises(ChannelClosedByBroker) as refused, channel() as ch:
            ch.exchange_declare(
                events.exchange, exchange_type="topic", durable=durable, arguments=arguments
            )
        assert refused.value.reply_code == 406  # declared otherwise


@pytest.mark.skipif(
    not rabbitmqctl_available(), reason="needs rabbitmqctl to act on the broker's connections"
)
def test_a_connection_the_broker_closed_is_reopened_for_the_next_event(
    publisher: PikaEventPublisher, rabbit: RabbitConfig, consumer: str
) -> None:
    publisher.publish(a_message(sequence=1))
    name = f"{rabbit.connection_name}-events"  # its own connections, beside the job publisher's
    assert wait_until(lambda: len(broker_connections(name)) >= 1)
    assert close_broker_connections(name) >= 1
    publisher.publish(a_message(sequence=2))
    assert [m.json()["sequence"] for m in drain(consumer)] == [1, 2]


def test_an_events_exchange_declared_otherwise_is_refused_at_start_naming_it(
    rabbit: RabbitConfig, events: EventsConfig
) -> None:
    with channel() as ch:
        ch.exchange_declare(events.exchange, exchange_type="topic", durable=True)
    publisher = PikaEventPublisher(rabbit, events)
    try:
        with pytest.raises(TopologyError) as refused:
            publisher.declare_topology()
    finally:
        publisher.close()
    assert events.exchange in str(refused.value)
    assert "alternate-exchange" in str(refused.value)


def test_an_unreachable_broker_is_a_failed_publish(events: EventsConfig) -> None:
    nowhere = replace(unique_config(), url="amqp://guest:guest@127.0.0.1:1/", connect_timeout=1)
    publisher = PikaEventPublisher(nowhere, replace(events, confirm_timeout=3))
    try:
        with pytest.raises(BrokerUnreachable):
            publisher.declare_topology()
        with pytest.raises(BrokerUnreachable):
            publisher.publish(a_message())
    finally:
        publisher.close()


# --- the relay on PostgreSQL and RabbitMQ ------------------------------------------------------


@pytest.fixture
def own_database() -> Iterator[TrackingDatabase]:
    """A database of this test's own: the relay takes every pending event it finds."""
    name = f"cf_test_{uuid.uuid4().hex[:12]}"
    url = create_database(name)
    try:
        upgrade(url)
        db = TrackingDatabase(DatabaseConfig(url=url, pool_size=4))
        yield db
        db.close()
    finally:
        drop_database(name)


def a_request() -> GenerationRequest:
    request = GenerationRequest(
        id=str(uuid.uuid4()),
        user_id="u-1",
        prompt="a lighthouse at dawn",
        format="png",
        width=1024,
        height=1024,
        samples_count=2,
        correlation_id="c-1",
        created_at=AT,
        status=Status.PROCESSING_SAMPLES,
    )
    request.start(AT)
    return request


def test_two_relays_at_once_publish_every_event_exactly_once(
    own_database: TrackingDatabase, publisher: PikaEventPublisher, consumer: str
) -> None:
    requests = [a_request() for _ in range(6)]
    failed = {"status": "FAILED", "category": "platform", "code": "x", "message": "m"}

    def store(repo: Any) -> None:
        for request in requests:
            repo.add_request(request)
            repo.add_events(
                [RequestEvent(request.id, "u-1", EventType.FAILED, AT, "c-1", failed)] * 5
            )

    own_database.run_sync(store)
    relays = [EventRelay(own_database, publisher, SystemClock(), batch=4) for _ in range(2)]

    async def both() -> int:
        published = 0
        for _ in range(20):
            reports = await asyncio.gather(*(relay.publish_batch() for relay in relays))
            published += sum(r.published for r in reports)
            if not any(r.taken for r in reports):
                break
        return published

    assert asyncio.run(both()) == 30
    received = drain(consumer)
    ids = [m.properties.message_id for m in received]
    assert len(ids) == 30 and len(set(ids)) == 30
    for message in received:
        VALIDATOR.validate(message.json())
    left = own_database.run_sync(lambda repo: repo.lock_pending_events(100))
    assert left == []


def test_a_replayed_result_goes_out_again_and_a_status_set_pending_by_hand_is_cleared(
    own_database: TrackingDatabase, publisher: PikaEventPublisher, consumer: str
) -> None:
    """The operators' replay (operations.md, "Result events"): a published row set pending
    again is published again with its event id; a row that is no result is cleared instead."""
    from sqlalchemy import text

    request = a_request()
    failed = {"status": "FAILED", "category": "platform", "code": "x", "message": "m"}
    own_database.run_sync(
        lambda repo: (
            repo.add_request(request),
            repo.add_events([RequestEvent(request.id, "u-1", EventType.FAILED, AT, "c-1", failed)]),
        )
    )
    relay = EventRelay(own_database, publisher, SystemClock())
    assert asyncio.run(relay.publish_batch()).published == 1
    with own_database.engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE generation_events SET publish_pending = true, published_at = NULL "
                "WHERE request_id = :r"
            ),
            {"r": request.id},
        )
    report = asyncio.run(relay.publish_batch())
    assert (report.taken, report.published) == (2, 1)  # the status event and the failure
    first, again = drain(consumer)
    assert first.properties.message_id == again.properties.message_id
    assert own_database.run_sync(lambda repo: repo.lock_pending_events(10)) == []


class StuckBroker:
    """An events exchange that takes each publish and, once the test lets it go, fails it (a
    broker that stopped answering, until its timeout)."""

    def __init__(self) -> None:
        self.entered = threading.Semaphore(0)
        self.release = threading.Event()
        self.attempts = 0
        self._lock = threading.Lock()

    def publish(self, message: EventMessage) -> None:
        with self._lock:
            self.attempts += 1
        self.entered.release()
        self.release.wait(30)
        raise BrokerUnreachable("no confirmation", job_id=message.event_id)

    async def aclose(self) -> None:
        """Nothing to release."""


class StepClock:
    def __init__(self) -> None:
        self.at = AT

    def now(self) -> datetime:
        return self.at


def test_a_broker_that_stops_answering_holds_two_connections_then_one_probe(
    own_database: TrackingDatabase,
) -> None:
    """Callbacks in flight when the broker stops answering: two relays wait for it (two database
    connections), the others leave their events to the sweep at once; after the pause a single
    relay tries the broker again while the rest still do not."""
    requests = [a_request() for _ in range(6)]
    failed = {"status": "FAILED", "category": "platform", "code": "x", "message": "m"}

    def store(repo: Any) -> None:
        for request in requests:
            repo.add_request(request)
            repo.add_events([RequestEvent(request.id, "u-1", EventType.FAILED, AT, "c-1", failed)])

    own_database.run_sync(store)
    broker = StuckBroker()
    clock = StepClock()
    relay = EventRelay(own_database, broker, clock, pause_after_failure=timedelta(seconds=30))

    async def callbacks_at_once(ids: list[str], in_the_broker: int) -> None:
        tasks = [asyncio.create_task(relay.after_commit(i)) for i in ids]
        for _ in range(in_the_broker):  # these have reached the broker and wait in it
            assert await asyncio.to_thread(broker.entered.acquire, True, 10)
        broker.release.set()
        reports = await asyncio.gather(*tasks)
        assert sum(r.failed for r in reports) == in_the_broker
        assert sum(r.published for r in reports) == 0
        broker.release.clear()

    asyncio.run(callbacks_at_once([r.id for r in requests], in_the_broker=2))
    assert broker.attempts == 2
    clock.at += timedelta(seconds=31)
    asyncio.run(callbacks_at_once([r.id for r in requests], in_the_broker=1))
    assert broker.attempts == 3
    pending = own_database.run_sync(lambda repo: repo.lock_pending_events(100))
    assert len(pending) == 6  # every event still waits for the sweep

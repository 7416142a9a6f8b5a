"""The RabbitMQ job publisher against a real broker: topology, confirms, reconnects, the pool."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from importlib.resources import files

import jsonschema
import pika
import pytest

from creativeflow.adapters.rabbitmq import (
    BrokerUnreachable,
    JobUnroutable,
    PikaJobPublisher,
    PublishFailed,
    RabbitConfig,
)
from creativeflow.adapters.rabbitmq.worker_pool import WorkerPool
from creativeflow.domain.errors import DispatchUnavailable
from creativeflow.domain.jobs import JOB_SCHEMA, JobCancellation, Stage
from tests.integration.rabbit_support import (
    broker_connections,
    channel,
    close_broker_connections,
    delete_topology,
    drain,
    get_message,
    make_job,
    queue_depth,
    queue_is_refused,
    rabbitmqctl_available,
    unique_config,
    wait_until,
)
from tests.unit.fakes import RecordingPublisher

needs_rabbitmqctl = pytest.mark.skipif(
    not rabbitmqctl_available(), reason="needs rabbitmqctl to act on the broker's connections"
)


@pytest.fixture
def config() -> Iterator[RabbitConfig]:
    config = unique_config()
    yield config
    delete_topology(config)


@pytest.fixture
def publisher(config: RabbitConfig) -> Iterator[PikaJobPublisher]:
    publisher = PikaJobPublisher(config)
    publisher.declare_topology()
    yield publisher
    publisher.close()


def job_validator() -> jsonschema.Draft202012Validator:
    schema = json.loads((files("creativeflow") / "schemas" / "generation-job.v2.json").read_text())
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


# -- topology -----------------------------------------------------------------------------------


def test_topology_declares_a_durable_quorum_job_queue(config: RabbitConfig) -> None:
    topology = PikaJobPublisher(config).declare_topology()

    assert topology.queue_type == "quorum"
    quorum_with_dead_letters = {
        "durable": True,
        "arguments": {
            "x-queue-type": "quorum",
            "x-dead-letter-exchange": config.dead_letter_exchange,
            "x-delivery-limit": config.delivery_limit,
        },
    }
    # the broker accepts an identical redeclaration and refuses any other kind of queue
    assert not queue_is_refused(config.queue, **quorum_with_dead_letters)
    assert queue_is_refused(config.queue, durable=True, arguments={"x-queue-type": "classic"})
    assert queue_is_refused(
        config.queue,
        durable=True,
        arguments={"x-queue-type": "quorum", "x-dead-letter-exchange": "elsewhere"},
    )


def test_declaring_the_topology_twice_changes_nothing(config: RabbitConfig) -> None:
    publisher = PikaJobPublisher(config)
    first = publisher.declare_topology()
    second = publisher.declare_topology()
    publisher.close()

    assert first == second


def test_an_existing_classic_queue_is_kept_classic(config: RabbitConfig) -> None:
    with channel() as ch:
        ch.queue_declare(
            config.queue,
            durable=True,
            arguments={"x-dead-letter-exchange": config.dead_letter_exchange},
        )

    topology = PikaJobPublisher(config).declare_topology()

    assert topology.queue_type == "classic"
    assert topology.dead_letter_queue_type == "quorum"


def test_classic_queues_when_quorum_is_off(config: RabbitConfig) -> None:
    topology = PikaJobPublisher(replace(config, quorum=False)).declare_topology()

    assert (topology.queue_type, topology.dead_letter_queue_type) == ("classic", "classic")
    assert queue_is_refused(config.queue, durable=True, arguments={"x-queue-type": "quorum"})


def test_a_job_requeued_past_the_delivery_limit_is_dead_lettered(config: RabbitConfig) -> None:
    """n8n rejects with requeue a job whose execution failed: it comes back, up to the limit,
    then waits in the dead letters instead of looping for ever."""
    config = replace(config, delivery_limit=2)
    PikaJobPublisher(config).declare_topology()
    with channel() as ch:
        ch.basic_publish(config.exchange, config.routing_key, b"not json", pika.BasicProperties())
    deliveries = 0
    with channel() as ch:
        for _ in range(10):
            if not wait_until(lambda: queue_depth(config.queue) == 1, timeout=2):
                break
            method, _properties, _body = ch.basic_get(config.queue)
            if method is None:
                break
            deliveries += 1
            ch.basic_nack(method.delivery_tag, requeue=True)
    assert deliveries == 3  # the first delivery and two more
    dead = get_message(config.dead_letter_queue)
    assert dead is not None and dead.body == b"not json"


def test_a_queue_declared_before_the_delivery_limit_is_kept(config: RabbitConfig) -> None:
    with channel() as ch:
        ch.queue_declare(
            config.queue,
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-dead-letter-exchange": config.dead_letter_exchange,
            },
        )

    topology = PikaJobPublisher(config).declare_topology()

    assert topology.queue_type == "quorum"


def test_a_rejected_job_is_dead_lettered(config: RabbitConfig) -> None:
    PikaJobPublisher(config).declare_topology()
    with channel() as ch:
        ch.basic_publish(
            config.exchange,
            config.routing_key,
            b'{"poison": true}',
            pika.BasicProperties(message_id="poison-1"),
        )

    with channel() as ch:
        assert wait_until(lambda: queue_depth(config.queue) == 1)
        method, _properties, _body = ch.basic_get(config.queue)
        ch.basic_nack(method.delivery_tag, requeue=False)

    dead = get_message(config.dead_letter_queue)
    assert dead is not None
    assert dead.properties.message_id == "poison-1"
    assert dead.body == b'{"poison": true}'
    assert queue_depth(config.queue) == 0


# -- publishing ---------------------------------------------------------------------------------


def test_a_published_job_arrives_persistent_and_valid(
    config: RabbitConfig, publisher: PikaJobPublisher
) -> None:
    job = make_job(stage=Stage.FINAL)

    asyncio.run(publisher.publish(job))

    received = get_message(config.queue)
    assert received is not None
    properties = received.properties
    assert properties.delivery_mode == 2
    assert properties.message_id == job.job_id
    assert properties.correlation_id == job.correlation_id
    assert properties.content_type == "application/json"
    assert properties.type == "AIGenerationJobRequested"
    assert properties.headers["schema"] == JOB_SCHEMA
    assert properties.timestamp is not None
    body = received.json()
    job_validator().validate(body)
    assert body["job_id"] == job.job_id
    assert body["stage"] == "final"


def test_a_cancellation_arrives_on_the_cancellation_queue_only(
    config: RabbitConfig, publisher: PikaJobPublisher
) -> None:
    job = make_job()
    cancellation = JobCancellation(
        job_id=job.job_id,
        request_id=job.request_id,
        stage=job.stage,
        action=job.action,
        correlation_id=job.correlation_id,
        cancelled_at=datetime.now(UTC),
    )

    asyncio.run(publisher.cancel(cancellation))

    assert queue_depth(config.queue) == 0
    received = get_message(config.cancel_queue)
    assert received is not None
    properties = received.properties
    assert (properties.delivery_mode, properties.type) == (2, "AIGenerationJobCancelled")
    assert properties.message_id == f"cancel-{job.job_id}"
    assert properties.headers["schema"] == "creativeflow.generation-cancel.v1"
    schema = json.loads(
        (files("creativeflow") / "schemas" / "generation-cancel.v1.json").read_text()
    )
    body = received.json()
    jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    ).validate(body)
    assert (body["job_id"], body["reason"]) == (job.job_id, "cancelled_by_user")


def test_cancellations_expire_from_their_queue(config: RabbitConfig) -> None:
    """Nobody may consume them (a deployment without the workflow's cancellation trigger): they
    must not pile up for ever."""
    PikaJobPublisher(config).declare_topology()
    ttl = {"x-message-ttl": config.cancel_ttl_seconds * 1000, "x-queue-type": "quorum"}
    assert not queue_is_refused(config.cancel_queue, durable=True, arguments=ttl)
    assert queue_is_refused(config.cancel_queue, durable=True, arguments={"x-queue-type": "quorum"})


def test_an_unroutable_job_is_a_failed_publish(config: RabbitConfig) -> None:
    PikaJobPublisher(config).declare_topology()
    publisher = PikaJobPublisher(replace(config, routing_key="no.queue.bound"))
    try:
        with pytest.raises(JobUnroutable) as raised:
            asyncio.run(publisher.publish(make_job()))
        # the channel survives an unroutable message: the next good publish works
        asyncio.run(PikaJobPublisher(config).publish(make_job()))
    finally:
        publisher.close()

    assert isinstance(raised.value, PublishFailed)
    assert isinstance(raised.value, DispatchUnavailable)
    assert raised.value.status_code == 503
    assert queue_depth(config.queue) == 1


def test_a_missing_exchange_is_a_failed_publish(config: RabbitConfig) -> None:
    publisher = PikaJobPublisher(config)  # topology never declared
    try:
        with pytest.raises(BrokerUnreachable) as raised:
            asyncio.run(publisher.publish(make_job()))
    finally:
        publisher.close()
    assert "NOT_FOUND" in raised.value.reason


def test_an_unreachable_broker_is_a_failed_publish() -> None:
    config = unique_config(url="amqp://guest:guest@127.0.0.1:1/", connect_timeout=2.0)
    publisher = PikaJobPublisher(config)
    try:
        with pytest.raises(BrokerUnreachable) as raised:
            asyncio.run(publisher.publish(make_job()))
        assert asyncio.run(publisher.check()) is False
    finally:
        publisher.close()
    assert raised.value.outcome_unknown is False


@needs_rabbitmqctl
def test_a_connection_closed_by_the_broker_is_reopened(config: RabbitConfig) -> None:
    publisher = PikaJobPublisher(replace(config, publish_workers=1))
    publisher.declare_topology()
    try:
        asyncio.run(publisher.publish(make_job()))
        before = broker_connections(config.connection_name)
        assert close_broker_connections(config.connection_name) == 1
        assert wait_until(lambda: not broker_connections(config.connection_name))

        asyncio.run(publisher.publish(make_job()))

        after = broker_connections(config.connection_name)
    finally:
        publisher.close()

    assert len(after) == 1
    assert not set(before) & set(after)
    assert queue_depth(config.queue) == 2


@needs_rabbitmqctl
def test_a_publish_on_a_dead_connection_reconnects_and_retries_once(
    config: RabbitConfig, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    publisher = PikaJobPublisher(replace(config, publish_workers=1))
    publisher.declare_topology()
    # skip the idle check so that basic_publish itself meets the dead connection
    monkeypatch.setattr(publisher, "_idle_link_alive", lambda connection, channel: True)
    try:
        asyncio.run(publisher.publish(make_job()))
        close_broker_connections(config.connection_name)
        assert wait_until(lambda: not broker_connections(config.connection_name))
        job = make_job()

        with caplog.at_level(logging.WARNING, logger="creativeflow.adapters.rabbitmq"):
            asyncio.run(publisher.publish(job))
    finally:
        publisher.close()

    assert any("lost its connection" in record.getMessage() for record in caplog.records)
    message_ids = [message.properties.message_id for message in drain(config.queue)]
    assert len(message_ids) == 2
    assert message_ids[1] == job.job_id


@needs_rabbitmqctl
def test_an_idle_connection_is_kept_alive_by_heartbeats(config: RabbitConfig) -> None:
    publisher = PikaJobPublisher(replace(config, publish_workers=1, heartbeat=1))
    publisher.declare_topology()
    try:
        asyncio.run(publisher.publish(make_job()))
        before = broker_connections(config.connection_name)
        time.sleep(5)  # idle for five heartbeats: the broker drops a connection silent for two

        asyncio.run(publisher.publish(make_job()))

        after = broker_connections(config.connection_name)
    finally:
        publisher.close()

    assert len(before) == 1
    assert after == before
    assert queue_depth(config.queue) == 2


def test_fifty_concurrent_publishes_each_arrive_once(
    config: RabbitConfig, publisher: PikaJobPublisher
) -> None:
    jobs = [make_job() for _ in range(50)]

    async def publish_all() -> None:
        await asyncio.gather(*(publisher.publish(job) for job in jobs))

    asyncio.run(publish_all())

    assert 1 <= publisher.connection_count <= config.publish_workers
    message_ids = [message.properties.message_id for message in drain(config.queue)]
    assert sorted(message_ids) == sorted(job.job_id for job in jobs)


@needs_rabbitmqctl
def test_close_leaves_no_connection_open(config: RabbitConfig) -> None:
    publisher = PikaJobPublisher(config)
    publisher.declare_topology()

    async def publish_some() -> None:
        await asyncio.gather(*(publisher.publish(make_job()) for _ in range(12)))

    asyncio.run(publish_some())
    assert broker_connections(config.connection_name)

    publisher.close()

    assert publisher.connection_count == 0
    assert wait_until(lambda: not broker_connections(config.connection_name, open_only=False))
    with pytest.raises(PublishFailed):
        asyncio.run(publisher.publish(make_job()))


def test_check_reports_readiness(config: RabbitConfig, publisher: PikaJobPublisher) -> None:
    assert asyncio.run(publisher.check()) is True

    missing_exchange = PikaJobPublisher(replace(config, exchange=f"{config.exchange}.missing"))
    try:
        assert asyncio.run(missing_exchange.check()) is False
    finally:
        missing_exchange.close()


# -- configuration and the fake twin -------------------------------------------------------------


def test_config_repr_hides_the_password() -> None:
    config = RabbitConfig(url="amqp://creative:s3cr3t-pw@rabbit.internal:5672/%2F")

    assert "s3cr3t-pw" not in repr(config)
    assert "s3cr3t-pw" not in repr(PikaJobPublisher(config))
    assert "creative:***@rabbit.internal:5672" in repr(config)


def test_recording_publisher_records_and_fails_on_request() -> None:
    fake = RecordingPublisher()
    fake.fail_next(1)
    first, second = make_job(), make_job()

    with pytest.raises(PublishFailed):
        asyncio.run(fake.publish(first))
    asyncio.run(fake.publish(second))

    assert fake.job_ids == [second.job_id]
    assert fake.attempts == 2
    assert asyncio.run(fake.check()) is True


def test_worker_pool_drops_queued_work_and_lets_each_worker_clean_up() -> None:
    started = threading.Semaphore(0)
    release = threading.Event()
    exits: list[str] = []

    def block() -> bool:
        started.release()
        return release.wait(30)

    pool = WorkerPool(
        2,
        "test-pool",
        idle_interval=0.05,
        on_exit=lambda: exits.append(threading.current_thread().name),
    )
    running = [pool.submit(block) for _ in range(2)]
    queued = pool.submit(lambda: "never")
    assert started.acquire(timeout=10) and started.acquire(timeout=10)

    pool.shutdown(wait=False, cancel_futures=True)
    release.set()
    pool.shutdown(wait=True)

    assert [future.result() for future in running] == [True, True]
    assert queued.cancelled()
    assert sorted(exits) == ["test-pool_0", "test-pool_1"]
    with pytest.raises(RuntimeError):
        pool.submit(lambda: None)

"""The results-queue consumer against the real RabbitMQ: what it acks, retries and dead-letters,
and that a message is settled only once its handler has finished.

The handler here is the edge of this adapter (the callback use case is driven end to end in
``tests/e2e_results``): a script of settlements, recording what it was given.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

import pika
import pytest

from creativeflow.adapters.rabbitmq.config import RabbitConfig
from creativeflow.adapters.rabbitmq.results import (
    ATTEMPT_HEADER,
    ResultsConfig,
    ResultsConsumer,
    Settlement,
    SettlementKind,
)
from tests.integration.rabbit_support import (
    broker_connections,
    channel,
    close_broker_connections,
    drain,
    get_message,
    queue_depth,
    rabbitmqctl_available,
    unique_config,
    wait_until,
)


class Script:
    """Settles each message as told, by its body; records every delivery."""

    def __init__(self) -> None:
        self.seen: list[tuple[dict[str, str], bytes]] = []
        self.plan: dict[bytes, list[Settlement]] = {}
        self.release = threading.Event()
        self.release.set()

    async def __call__(self, headers: Mapping[str, str], body: bytes) -> Settlement:
        self.seen.append((dict(headers), body))
        while not self.release.is_set():
            await asyncio.sleep(0.01)
        planned = self.plan.get(body)
        if planned:
            return planned.pop(0) if len(planned) > 1 else planned[0]
        return Settlement.ack("applied")

    def deliveries(self, body: bytes) -> int:
        return sum(1 for _, seen in self.seen if seen == body)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    running = asyncio.new_event_loop()
    thread = threading.Thread(target=running.run_forever, daemon=True)
    thread.start()
    try:
        yield running
    finally:
        running.call_soon_threadsafe(running.stop)
        thread.join(5)
        running.close()


@pytest.fixture
def rabbit() -> Iterator[RabbitConfig]:
    config = unique_config()
    yield config
    with channel() as ch:
        for queue in (f"{config.queue}.results", f"{config.queue}.results.dead"):
            ch.queue_delete(queue)
        ch.queue_delete(f"{config.queue}.results.retry")
        ch.exchange_delete(config.exchange)


def results_config(rabbit: RabbitConfig, **overrides: Any) -> ResultsConfig:
    config = ResultsConfig(
        queue=f"{rabbit.queue}.results",
        routing_key="generation.result",
        prefetch=4,
        retry_delay_seconds=0.2,
        max_attempts=3,
        reconnect_delay=0.2,
    )
    return replace(config, **overrides)


def publish(rabbit: RabbitConfig, results: ResultsConfig, body: bytes, **headers: str) -> None:
    """As n8n's RabbitMQ node publishes: to the exchange, by routing key, headers as given."""
    with channel() as ch:
        ch.basic_publish(
            rabbit.exchange,
            results.routing_key,
            body,
            properties=pika.BasicProperties(headers=dict(headers)),
        )


def started(
    rabbit: RabbitConfig,
    results: ResultsConfig,
    script: Script,
    loop: asyncio.AbstractEventLoop,
    settled: list[SettlementKind],
) -> ResultsConsumer:
    consumer = ResultsConsumer(rabbit, results, script, on_settled=settled.append)
    consumer.start(loop)
    assert consumer.wait_until_consuming(15)
    return consumer


def test_an_applied_result_is_acked_with_its_headers_handed_over(
    rabbit: RabbitConfig, loop: asyncio.AbstractEventLoop
) -> None:
    results, script, settled = results_config(rabbit), Script(), []
    consumer = started(rabbit, results, script, loop, settled)
    try:
        publish(rabbit, results, b'{"ok": 1}', **{"Webhook-Id": "msg_1", "webhook-timestamp": "7"})
        assert wait_until(lambda: settled == [SettlementKind.ACK])
        headers, body = script.seen[0]
        assert body == b'{"ok": 1}'
        assert headers["webhook-id"] == "msg_1" and headers["webhook-timestamp"] == "7"
        consumer.stop()
        assert queue_depth(results.queue) == 0
        assert queue_depth(results.dead_letter_queue) == 0
    finally:
        consumer.stop()


def test_a_refused_result_goes_to_the_dead_letter_queue_and_is_not_redelivered(
    rabbit: RabbitConfig, loop: asyncio.AbstractEventLoop
) -> None:
    results, script, settled = results_config(rabbit), Script(), []
    script.plan[b"forged"] = [Settlement.dead_letter("callback signature refused")]
    consumer = started(rabbit, results, script, loop, settled)
    try:
        publish(rabbit, results, b"forged", **{"webhook-id": "msg_forged"})
        dead = get_message(results.dead_letter_queue, timeout=10)
        assert dead is not None and dead.body == b"forged"
        assert dead.properties.headers["webhook-id"] == "msg_forged"
        time.sleep(0.5)  # a requeue would have handed it over again by now
        assert script.deliveries(b"forged") == 1
        assert settled == [SettlementKind.DEAD_LETTER]
    finally:
        consumer.stop()


def test_a_passing_failure_comes_back_after_the_delay_and_is_then_applied(
    rabbit: RabbitConfig, loop: asyncio.AbstractEventLoop
) -> None:
    results, script, settled = results_config(rabbit), Script(), []
    script.plan[b"later"] = [Settlement.retry("database down"), Settlement.ack("applied")]
    consumer = started(rabbit, results, script, loop, settled)
    try:
        publish(rabbit, results, b"later", **{"webhook-id": "msg_later"})
        assert wait_until(lambda: settled == [SettlementKind.RETRY, SettlementKind.ACK])
        assert script.deliveries(b"later") == 2
        # the copy keeps what n8n signed, and counts the attempt
        retried_headers = script.seen[1][0]
        assert retried_headers["webhook-id"] == "msg_later"
        assert retried_headers[ATTEMPT_HEADER] == "2"
        assert queue_depth(results.retry_queue) == 0
        assert queue_depth(results.dead_letter_queue) == 0
    finally:
        consumer.stop()


def test_a_result_that_keeps_failing_is_dead_lettered_after_its_attempts(
    rabbit: RabbitConfig, loop: asyncio.AbstractEventLoop
) -> None:
    results, script, settled = results_config(rabbit, max_attempts=3), Script(), []
    script.plan[b"never"] = [Settlement.retry("database down")]
    consumer = started(rabbit, results, script, loop, settled)
    try:
        publish(rabbit, results, b"never", **{"webhook-id": "msg_never"})
        dead = get_message(results.dead_letter_queue, timeout=15)
        assert dead is not None and dead.body == b"never"
        assert script.deliveries(b"never") == 3
        assert settled == [SettlementKind.RETRY, SettlementKind.RETRY, SettlementKind.DEAD_LETTER]
    finally:
        consumer.stop()


def test_a_message_is_settled_only_after_its_handler_finished(
    rabbit: RabbitConfig, loop: asyncio.AbstractEventLoop
) -> None:
    """Stopped while the handler works: the message is not acked; the next consumer gets it."""
    results, script, settled = results_config(rabbit, drain_timeout=0.3), Script(), []
    script.release.clear()
    consumer = started(rabbit, results, script, loop, settled)
    publish(rabbit, results, b"slow", **{"webhook-id": "msg_slow"})
    assert wait_until(lambda: script.deliveries(b"slow") == 1)
    consumer.stop()  # the handler is still running: nothing settled
    assert settled == []
    script.release.set()
    assert wait_until(lambda: queue_depth(results.queue) == 1)
    again = ResultsConsumer(rabbit, results, script, on_settled=settled.append)
    again.start(loop)
    try:
        assert wait_until(lambda: SettlementKind.ACK in settled)
        assert script.deliveries(b"slow") == 2
    finally:
        again.stop()


def test_declaring_twice_is_harmless_and_the_queue_is_durable(
    rabbit: RabbitConfig, loop: asyncio.AbstractEventLoop
) -> None:
    results, script, settled = results_config(rabbit), Script(), []
    for _ in range(2):
        consumer = started(rabbit, results, script, loop, settled)
        consumer.stop()
    with channel() as ch:
        for queue in (results.queue, results.dead_letter_queue, results.retry_queue):
            ch.queue_declare(queue, passive=True)
    assert drain(results.queue) == []


@pytest.mark.skipif(
    not rabbitmqctl_available(), reason="needs rabbitmqctl to act on the broker's connections"
)
def test_a_connection_the_broker_closed_is_reopened_and_consuming_goes_on(
    rabbit: RabbitConfig, loop: asyncio.AbstractEventLoop
) -> None:
    results, script, settled = results_config(rabbit), Script(), []
    consumer = started(rabbit, results, script, loop, settled)
    name = f"{rabbit.connection_name}-results"
    try:
        assert close_broker_connections(name) == 1
        assert wait_until(lambda: not consumer.consuming, timeout=10)
        assert wait_until(lambda: consumer.consuming and len(broker_connections(name)) == 1, 20)
        publish(rabbit, results, b"after", **{"webhook-id": "msg_after"})
        assert wait_until(lambda: settled == [SettlementKind.ACK])
    finally:
        consumer.stop()

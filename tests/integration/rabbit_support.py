"""Helpers for tests against the real RabbitMQ: unique names per test, clean-up, reading queues.

Set ``CREATIVEFLOW_TEST_RABBITMQ_URL`` to use another broker than the local one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pika
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import ChannelClosedByBroker
from pika.spec import Basic, BasicProperties

from creativeflow.adapters.rabbitmq.config import RabbitConfig
from creativeflow.domain.jobs import CallbackUrls, JobMessage, Stage

RABBITMQ_URL = os.environ.get(
    "CREATIVEFLOW_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/"
)


def unique_config(**overrides: Any) -> RabbitConfig:
    """A config whose exchanges, queues and connection name no other test run shares."""
    tag = uuid.uuid4().hex[:12]
    config = RabbitConfig(
        url=RABBITMQ_URL,
        exchange=f"test.{tag}.generation",
        queue=f"test.{tag}.jobs",
        routing_key="generation.job",
        dead_letter_exchange=f"test.{tag}.generation.dlx",
        dead_letter_queue=f"test.{tag}.jobs.dead",
        cancel_queue=f"test.{tag}.cancellations",
        connection_name=f"test-publisher-{tag}",
    )
    return replace(config, **overrides)


@contextmanager
def channel() -> Iterator[BlockingChannel]:
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    try:
        yield connection.channel()
    finally:
        if connection.is_open:
            connection.close()


def delete_topology(config: RabbitConfig) -> None:
    """Remove the test's queues and exchanges, its events exchange's included (the names
    :func:`unique_events_env` gives it); missing ones are fine."""
    events = unique_events_env(config)
    with channel() as ch:
        for queue in (
            config.queue,
            config.dead_letter_queue,
            config.cancel_queue,
            events["RABBITMQ_EVENTS_UNROUTED_QUEUE"],
        ):
            ch.queue_delete(queue)
        for exchange in (
            config.exchange,
            config.dead_letter_exchange,
            events["RABBITMQ_EVENTS_EXCHANGE"],
            events["RABBITMQ_EVENTS_UNROUTED_EXCHANGE"],
        ):
            ch.exchange_delete(exchange)


def unique_events_env(config: RabbitConfig) -> dict[str, str]:
    """The environment naming an events exchange as unique as ``config``'s names."""
    prefix = config.exchange.removesuffix(".generation")
    return {
        "RABBITMQ_EVENTS_EXCHANGE": f"{prefix}.events",
        "RABBITMQ_EVENTS_UNROUTED_EXCHANGE": f"{prefix}.events.unrouted",
        "RABBITMQ_EVENTS_UNROUTED_QUEUE": f"{prefix}.events.unrouted",
    }


@dataclass(frozen=True)
class Received:
    method: Basic.GetOk
    properties: BasicProperties
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def get_message(queue: str, timeout: float = 30.0, ack: bool = True) -> Received | None:
    """The next message of ``queue`` (polled with ``basic_get``), or None after ``timeout``
    (generous: a loaded machine dead-letters and delivers late, and a wait that succeeds ends
    as soon as it does)."""
    deadline = time.monotonic() + timeout
    with channel() as ch:
        while True:
            method, properties, body = ch.basic_get(queue, auto_ack=ack)
            if method is not None:
                return Received(method, properties, body)
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)


def drain(queue: str) -> list[Received]:
    """Every message in ``queue`` now, acked."""
    messages: list[Received] = []
    with channel() as ch:
        while True:
            method, properties, body = ch.basic_get(queue, auto_ack=True)
            if method is None:
                return messages
            messages.append(Received(method, properties, body))


def queue_depth(queue: str) -> int:
    """Messages ready in ``queue`` (not counting unacked ones)."""
    with channel() as ch:
        return int(ch.queue_declare(queue, passive=True).method.message_count)


def queue_is_refused(queue: str, **declare: Any) -> bool:
    """Whether the broker refuses to redeclare ``queue`` with these settings (406)."""
    with channel() as ch:
        try:
            ch.queue_declare(queue, **declare)
        except ChannelClosedByBroker as exc:
            return bool(exc.reply_code == 406)
        return False


def wait_until(
    predicate: Callable[[], bool], timeout: float = 30.0, interval: float = 0.05
) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


# -- broker-side view of connections (rabbitmqctl) -------------------------------------------------


def rabbitmqctl_available() -> bool:
    return shutil.which("rabbitmqctl") is not None


def _rabbitmqctl(*args: str) -> str:
    done = subprocess.run(
        ["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout


def broker_connections(connection_name: str, *, open_only: bool = True) -> list[str]:
    """The broker's names of the connections whose client set ``connection_name``.

    A connection the broker closed stays listed (state ``closed``) until the client answers the
    close; ``open_only`` leaves those out.
    """
    listing = json.loads(
        _rabbitmqctl(
            "list_connections", "name", "state", "client_properties", "--formatter", "json"
        )
        or "[]"
    )
    names = []
    for connection in listing:
        # a connection still opening (another client's, on a shared broker) may list no
        # client properties yet, or not as (key, type, value) triples
        listed = connection.get("client_properties") or []
        properties = {entry[0]: entry[-1] for entry in listed if isinstance(entry, list) and entry}
        if properties.get("connection_name") != connection_name:
            continue
        if open_only and connection["state"] in ("closing", "closed"):
            continue
        names.append(connection["name"])
    return names


def _connection_pids() -> dict[str, str]:
    """Connection name -> Erlang pid, which ``close_connection`` wants (the JSON form won't do)."""
    listing = _rabbitmqctl("list_connections", "--no-table-headers", "pid", "name")
    pids = {}
    for line in listing.splitlines():
        if "\t" in line:
            pid, name = line.split("\t", 1)
            pids[name] = pid
    return pids


def close_broker_connections(connection_name: str) -> int:
    """Have the broker close every connection named ``connection_name``; how many there were."""
    names = broker_connections(connection_name)
    pids = _connection_pids()
    for name in names:
        _rabbitmqctl("close_connection", pids[name], "closed by a test")
    return len(names)


# -- job messages -------------------------------------------------------------------------------


def make_job(
    callback_base: str = "http://127.0.0.1:9/api/v1/callbacks",
    *,
    stage: Stage = Stage.SAMPLES,
    prompt: str = "a lighthouse at dawn, watercolour",
    samples: int = 3,
    fmt: str = "png",
    width: int = 1024,
    height: int = 768,
) -> JobMessage:
    now = datetime.now(UTC)
    parameters: dict[str, Any] = {
        "prompt": prompt,
        "format": fmt,
        "width": width,
        "height": height,
        "style_guidance": None,
        "brand_elements": None,
        "project_id": None,
    }
    if stage is Stage.SAMPLES:
        parameters["samples"] = samples
    else:
        parameters["selected_sample"] = {"id": "s2", "url": "https://assets.example/s2.png"}
    return JobMessage(
        job_id=str(uuid.uuid4()),
        request_id=str(uuid.uuid4()),
        user_id="user-42",
        stage=stage,
        attempt=1,
        action=stage.value,
        model="sdxl-turbo",
        correlation_id=f"corr-{uuid.uuid4().hex[:8]}",
        created_at=now,
        deadline_at=now + timedelta(minutes=10),
        parameters=parameters,
        callbacks=CallbackUrls(
            generic=f"{callback_base}/n8n",
            samples=f"{callback_base}/samples",
            final=f"{callback_base}/final",
            error=f"{callback_base}/error",
        ),
    )


# -- the events exchange ------------------------------------------------------------------------


def events_settings(prefix: str) -> dict[str, str]:
    """Settings (by field name) of an events exchange and unrouted queue of a test's own."""
    return {
        "rabbitmq_events_exchange": f"{prefix}.events",
        "rabbitmq_events_unrouted_exchange": f"{prefix}.events.unrouted",
        "rabbitmq_events_unrouted_queue": f"{prefix}.events.unrouted",
    }


def events_env(settings: Any) -> dict[str, str]:
    """The environment naming ``settings``' events exchange, for a ``creativeflow`` process."""
    return {
        "RABBITMQ_EVENTS_EXCHANGE": settings.rabbitmq_events_exchange,
        "RABBITMQ_EVENTS_UNROUTED_EXCHANGE": settings.rabbitmq_events_unrouted_exchange,
        "RABBITMQ_EVENTS_UNROUTED_QUEUE": settings.rabbitmq_events_unrouted_queue,
    }


def delete_events(settings: Any, *queues: str) -> None:
    """Remove ``settings``' events exchange, its unrouted queue and ``queues``."""
    with channel() as ch:
        for queue in (settings.rabbitmq_events_unrouted_queue, *queues):
            ch.queue_delete(queue)
        for exchange in (
            settings.rabbitmq_events_exchange,
            settings.rabbitmq_events_unrouted_exchange,
        ):
            ch.exchange_delete(exchange)

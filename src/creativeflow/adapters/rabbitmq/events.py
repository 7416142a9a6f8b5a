"""Publishes result events to the events exchange, with publisher confirms.

    events exchange (topic, durable) --generation.samples_ready--> what consumers bind
      | alternate-exchange              generation.final_ready
      v                                 generation.failed
    unrouted exchange (fanout, durable) ----> unrouted queue (durable; quorum when it can be)

Consumers bind their own queues to the events exchange (``generation.#`` for all three). An event
that no binding wants goes to the alternate exchange and waits in the unrouted queue instead of
being dropped; every message is persistent and ``mandatory``, so an event that not even that
queue takes (deleted by hand) is a failed publish and stays in the outbox.

The publishing is the job publisher's (:class:`PikaJobPublisher`): a bounded pool of worker
threads, each with its own connection and confirm-mode channel, heartbeats answered while idle,
one reconnect, every wait bounded. It is a second instance with its own pool and connection
name, pointed at the events exchange, so an events outage never holds a job's publish.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace

import pika
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import AMQPError, ChannelClosedByBroker
from pika.exchange_type import ExchangeType

from creativeflow.adapters.rabbitmq.config import RabbitConfig, connection_parameters
from creativeflow.adapters.rabbitmq.errors import BrokerUnreachable, TopologyError
from creativeflow.adapters.rabbitmq.publisher import PikaJobPublisher
from creativeflow.adapters.rabbitmq.topology import declare_durable_queue
from creativeflow.domain.events import EVENT_SCHEMA, EventMessage

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EventsConfig:
    """Where result events go. ``confirm_timeout`` bounds one publish (a relay holds its outbox
    rows for that long at most per event)."""

    exchange: str = "creativeflow.events"
    unrouted_exchange: str = "creativeflow.events.unrouted"
    unrouted_queue: str = "creativeflow.events.unrouted"
    confirm_timeout: float = 5.0
    publish_workers: int = 2

    def __post_init__(self) -> None:
        if self.confirm_timeout <= 0:
            raise ValueError("confirm_timeout must be positive")
        if self.publish_workers < 1:
            raise ValueError("publish_workers must be at least 1")


def event_properties(message: EventMessage, app_id: str, now: float) -> pika.BasicProperties:
    return pika.BasicProperties(
        content_type="application/json",
        content_encoding="utf-8",
        delivery_mode=pika.DeliveryMode.Persistent,
        message_id=message.message_id,
        correlation_id=message.correlation_id,
        type=message.event_type,
        timestamp=int(now),
        app_id=app_id,
        headers={
            "schema": EVENT_SCHEMA,
            "event_type": message.event_type,
            "request_id": message.event.request_id,
        },
    )


def declare_event_topology(
    connection: pika.BlockingConnection, rabbit: RabbitConfig, events: EventsConfig
) -> None:
    """Declare the events exchange, its alternate exchange and the unrouted queue."""
    try:
        channel: BlockingChannel = connection.channel()
        channel.exchange_declare(
            events.unrouted_exchange, exchange_type=ExchangeType.fanout, durable=True
        )
        channel, queue_type = declare_durable_queue(
            connection, channel, events.unrouted_queue, {}, rabbit.quorum
        )
        channel.queue_bind(events.unrouted_queue, events.unrouted_exchange)
        channel.exchange_declare(
            events.exchange,
            exchange_type=ExchangeType.topic,
            durable=True,
            arguments={"alternate-exchange": events.unrouted_exchange},
        )
        channel.close()
    except TopologyError:
        raise
    except ChannelClosedByBroker as exc:
        raise TopologyError(
            f"the broker refused the events exchange {events.exchange!r} "
            f"({exc.reply_code} {exc.reply_text}); an exchange of that name declared without "
            f"alternate-exchange={events.unrouted_exchange!r} must be deleted first"
        ) from exc
    except AMQPError as exc:
        raise TopologyError(f"declaring the events topology failed: {exc!r}") from exc
    log.info(
        "events topology ready: exchange=%s unrouted queue=%s (%s)",
        events.exchange,
        events.unrouted_queue,
        queue_type,
    )


class PikaEventPublisher:
    """Implements ``services.ports.EventPublisher``."""

    def __init__(self, rabbit: RabbitConfig, events: EventsConfig) -> None:
        self._rabbit = rabbit
        self._events = events
        self._publisher = PikaJobPublisher(
            replace(
                rabbit,
                exchange=events.exchange,
                confirm_timeout=events.confirm_timeout,
                publish_workers=events.publish_workers,
                connection_name=f"{rabbit.connection_name}-events",
            )
        )

    def __repr__(self) -> str:
        return f"PikaEventPublisher({self._events!r}, url={self._rabbit.safe_url!r})"

    def declare_topology(self) -> None:
        """Declare the events topology on a short-lived connection of its own."""
        try:
            connection = pika.BlockingConnection(connection_parameters(self._rabbit))
        except (AMQPError, OSError) as exc:
            raise BrokerUnreachable(
                f"cannot connect to {self._rabbit.safe_url} to declare the events topology: {exc!r}"
            ) from exc
        try:
            declare_event_topology(connection, self._rabbit, self._events)
        finally:
            try:
                if connection.is_open:
                    connection.close()
            except (AMQPError, OSError) as exc:
                log.debug("ignoring error while closing a connection: %r", exc)

    def publish(self, message: EventMessage) -> None:
        """Return once the broker confirmed ``message``; otherwise raise ``PublishFailed``."""
        body = message.encode()
        app_id = self._rabbit.connection_name

        def stamped() -> pika.BasicProperties:
            return event_properties(message, app_id, time.time())

        self._publisher.send_blocking(message.message_id, message.routing_key, body, stamped)

    def close(self) -> None:
        self._publisher.close()

    async def aclose(self) -> None:
        await self._publisher.aclose()

"""The exchanges and queues jobs travel through, declared idempotently once at start.

    exchange (direct, durable) --routing_key--> job queue (durable; quorum when it can be)
                                                   | rejected with requeue=False
                                                   v
    dead-letter exchange (fanout, durable) ----> dead-letter queue (durable)

    exchange --cancel_routing_key--> cancellation queue (durable; messages expire after
                                     cancel_ttl_seconds, by which time every job has ended)

n8n's results, when they come by queue (``results.py`` consumes them):

    exchange --results routing key--> results queue --rejected--> <queue>.dead
                                           ^
    <queue>.retry (messages expire) -------+

A quorum queue is replicated and survives a broker node loss; when the broker refuses one (too old,
or the queue already exists as a classic queue) the queue is declared classic and durable instead,
with a warning, so a development broker still works.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import pika
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import AMQPError, ChannelClosedByBroker
from pika.exchange_type import ExchangeType

from creativeflow.adapters.rabbitmq.config import RabbitConfig
from creativeflow.adapters.rabbitmq.errors import TopologyError

if TYPE_CHECKING:
    from creativeflow.adapters.rabbitmq.results import ResultsConfig

log = logging.getLogger(__name__)

QueueType = Literal["quorum", "classic"]


@dataclass(frozen=True, slots=True)
class DeclaredTopology:
    queue_type: QueueType
    dead_letter_queue_type: QueueType


def declare_topology(connection: pika.BlockingConnection, config: RabbitConfig) -> DeclaredTopology:
    """Declare everything on ``connection``; raise :class:`TopologyError` if the broker refuses."""
    try:
        channel = connection.channel()
        channel.exchange_declare(
            config.dead_letter_exchange, exchange_type=ExchangeType.fanout, durable=True
        )
        channel, dead_letter_type = declare_durable_queue(
            connection, channel, config.dead_letter_queue, {}, config.quorum
        )
        channel.queue_bind(config.dead_letter_queue, config.dead_letter_exchange)
        channel.exchange_declare(config.exchange, exchange_type=ExchangeType.direct, durable=True)
        channel, queue_type = declare_durable_queue(
            connection,
            channel,
            config.queue,
            {"x-dead-letter-exchange": config.dead_letter_exchange},
            config.quorum,
            # n8n rejects (with requeue) a job whose execution failed: without a limit, a job
            # that always fails would come back for ever; with it, it lands in the dead letters
            quorum_arguments={"x-delivery-limit": config.delivery_limit},
        )
        channel.queue_bind(config.queue, config.exchange, routing_key=config.routing_key)
        channel, _ = declare_durable_queue(
            connection,
            channel,
            config.cancel_queue,
            {"x-message-ttl": config.cancel_ttl_seconds * 1000},
            config.quorum,
        )
        channel.queue_bind(
            config.cancel_queue, config.exchange, routing_key=config.cancel_routing_key
        )
        channel.close()
    except TopologyError:
        raise
    except AMQPError as exc:
        raise TopologyError(f"declaring the job topology failed: {exc!r}") from exc
    log.info(
        "job topology ready: exchange=%s queue=%s (%s) dead-letter queue=%s (%s)",
        config.exchange,
        config.queue,
        queue_type,
        config.dead_letter_queue,
        dead_letter_type,
    )
    return DeclaredTopology(queue_type=queue_type, dead_letter_queue_type=dead_letter_type)


def declare_results_topology(
    connection: pika.BlockingConnection, config: RabbitConfig, results: ResultsConfig
) -> QueueType:
    """Declare the results queue, its dead letters and its retry queue, and bind it.

    Dead letters and retries go through the default exchange, straight to the queue they name,
    so the job queue's fanout dead-letter exchange never mixes jobs and results. The retry queue
    is classic: its messages expire one by one (a per-message TTL, so the delay can change
    without redeclaring it) and go back to the results queue.
    """
    try:
        channel = connection.channel()
        channel.exchange_declare(config.exchange, exchange_type=ExchangeType.direct, durable=True)
        channel, _ = declare_durable_queue(
            connection, channel, results.dead_letter_queue, {}, config.quorum
        )
        channel, queue_type = declare_durable_queue(
            connection,
            channel,
            results.queue,
            {
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": results.dead_letter_queue,
            },
            config.quorum,
        )
        channel.queue_bind(results.queue, config.exchange, routing_key=results.routing_key)
        channel, _ = declare_durable_queue(
            connection,
            channel,
            results.retry_queue,
            {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": results.queue},
            quorum=False,
        )
        channel.close()
    except TopologyError:
        raise
    except AMQPError as exc:
        raise TopologyError(f"declaring the results topology failed: {exc!r}") from exc
    return queue_type


def declare_durable_queue(
    connection: pika.BlockingConnection,
    channel: BlockingChannel,
    name: str,
    arguments: dict[str, Any],
    quorum: bool,
    quorum_arguments: dict[str, Any] | None = None,
) -> tuple[BlockingChannel, QueueType]:
    """Declare ``name`` as a quorum queue if asked and allowed, else classic.

    A refused declaration closes the channel, so the channel to go on with is returned.
    """
    if quorum:
        try:
            channel.queue_declare(
                name,
                durable=True,
                arguments={**arguments, **(quorum_arguments or {}), "x-queue-type": "quorum"},
            )
            return channel, "quorum"
        except ChannelClosedByBroker as exc:
            channel = connection.channel()
            if quorum_arguments and exc.reply_code == PRECONDITION_FAILED:
                kept = _keep_earlier_quorum_queue(channel, name, arguments, quorum_arguments)
                if kept is not None:
                    return kept, "quorum"
                channel = connection.channel()
            log.warning(
                "broker refused quorum queue %s (%s %s); declaring it classic and durable",
                name,
                exc.reply_code,
                exc.reply_text,
            )
    try:
        channel.queue_declare(name, durable=True, arguments=arguments)
    except ChannelClosedByBroker as exc:
        raise TopologyError(
            f"broker refused queue {name}: {exc.reply_code} {exc.reply_text}"
        ) from exc
    return channel, "classic"


PRECONDITION_FAILED = 406


def _keep_earlier_quorum_queue(
    channel: BlockingChannel,
    name: str,
    arguments: dict[str, Any],
    quorum_arguments: dict[str, Any],
) -> BlockingChannel | None:
    """A quorum queue declared before ``quorum_arguments`` existed cannot take them by a new
    declaration (the broker refuses to change a queue's arguments): keep it as it is, and say how
    to give it the new ones without losing its messages. None when it is not such a queue."""
    try:
        channel.queue_declare(name, durable=True, arguments={**arguments, "x-queue-type": "quorum"})
    except ChannelClosedByBroker:
        return None
    policy = ", ".join(f'"{k.removeprefix("x-")}": {v}' for k, v in quorum_arguments.items())
    log.warning(
        "queue %s was declared before %s: it is kept as it is; apply them with a policy, e.g. "
        "rabbitmqctl set_policy creativeflow-jobs '^%s$' '{%s}' --apply-to queues",
        name,
        ", ".join(quorum_arguments),
        name.replace(".", "\\."),
        policy,
    )
    return channel

"""Sends signed results the way n8n does: posted to the callback URL (Standard Webhooks headers,
timeouts, bounded retries), or published to the orchestrator's results queue with the same
headers as AMQP headers."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import pika
from pika.exceptions import AMQPError

from creativeflow.adapters.rabbitmq.config import redact_url
from creativeflow.webhook_signature import signed_headers

log = logging.getLogger(__name__)


def new_message_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def encode_callback(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True, slots=True)
class Delivery:
    msg_id: str
    delivered: bool
    status_code: int | None
    attempts: int


class ResultSender(Protocol):
    def send(self, url: str, payload: dict[str, Any]) -> Delivery: ...


class CallbackSender:
    """Sends one callback message; retries connection errors, 429 and 5xx, never other 4xx.

    A 2xx, or a 409 (the orchestrator refuses a webhook-id it has already taken), is delivered.

    Every attempt of one message carries the same ``webhook-id`` and is signed anew with the
    current time, as Standard Webhooks senders do; a waiting retry ends early when ``stop`` is set.
    """

    def __init__(
        self,
        client: httpx.Client,
        secret: str,
        *,
        attempts: int,
        backoff: float,
        stop: threading.Event,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._secret = secret
        self._attempts = max(1, attempts)
        self._backoff = backoff
        self._stop = stop
        self._clock = clock

    def send(self, url: str, payload: dict[str, Any]) -> Delivery:
        body = encode_callback(payload)
        msg_id = new_message_id()
        status: int | None = None
        for attempt in range(1, self._attempts + 1):
            headers = signed_headers(self._secret, msg_id, int(self._clock()), body)
            try:
                response = self._client.post(url, content=body, headers=headers)
            except httpx.TransportError as exc:
                log.warning("callback %s to %s failed (attempt %d): %r", msg_id, url, attempt, exc)
            else:
                status = response.status_code
                # 409: the orchestrator already has this webhook-id (an earlier attempt got through)
                if response.is_success or status == 409:
                    return Delivery(msg_id, True, status, attempt)
                if status < 500 and status != 429:
                    log.warning(
                        "callback %s to %s refused with HTTP %d; not retrying", msg_id, url, status
                    )
                    return Delivery(msg_id, False, status, attempt)
                log.warning(
                    "callback %s to %s got HTTP %d (attempt %d)", msg_id, url, status, attempt
                )
            if attempt < self._attempts and self._stop.wait(self._backoff * 2 ** (attempt - 1)):
                return Delivery(msg_id, False, status, attempt)
        log.error("callback %s to %s given up after %d attempts", msg_id, url, self._attempts)
        return Delivery(msg_id, False, status, self._attempts)


@dataclass(frozen=True, slots=True, repr=False)
class ResultsRoute:
    """Where results are published when they go by queue: the orchestrator's exchange and the
    routing key binding its results queue (``RABBITMQ_N8N_RESULTS_ROUTING_KEY``)."""

    rabbitmq_url: str
    exchange: str = "creativeflow.generation"
    routing_key: str = "generation.result"
    connect_timeout: float = 5.0

    def __repr__(self) -> str:
        return (
            f"ResultsRoute(rabbitmq_url={redact_url(self.rabbitmq_url)!r}, "
            f"exchange={self.exchange!r}, routing_key={self.routing_key!r})"
        )


class QueueResultSender:
    """Publishes one result as the workflow's "Publish result" step does: the body that was
    signed, the Standard Webhooks headers as AMQP headers, to the exchange by routing key.

    Unlike n8n's RabbitMQ node it waits for the broker's confirm (and the message being routed),
    and tries again on a connection error with a new timestamp and the same ``webhook-id``. A
    connection per result: the simulator's pace does not need more, and no connection is shared
    between answer threads.
    """

    def __init__(
        self,
        route: ResultsRoute,
        secret: str,
        *,
        attempts: int,
        backoff: float,
        stop: threading.Event,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._route = route
        self._secret = secret
        self._attempts = max(1, attempts)
        self._backoff = backoff
        self._stop = stop
        self._clock = clock
        params = pika.URLParameters(route.rabbitmq_url)
        params.socket_timeout = route.connect_timeout
        params.connection_attempts = 1
        params.client_properties = {"connection_name": "creativeflow-n8n-simulator-results"}
        self._params = params

    def send(self, url: str, payload: dict[str, Any]) -> Delivery:
        """``url`` (the job's callback URL) is not used: the result goes to the queue."""
        body = encode_callback(payload)
        msg_id = new_message_id()
        for attempt in range(1, self._attempts + 1):
            headers = signed_headers(self._secret, msg_id, int(self._clock()), body)
            headers.pop("content-type")
            try:
                self._publish(body, headers)
            except (AMQPError, OSError) as exc:
                log.warning("result %s not published (attempt %d): %r", msg_id, attempt, exc)
            else:
                return Delivery(msg_id, True, None, attempt)
            if attempt < self._attempts and self._stop.wait(self._backoff * 2 ** (attempt - 1)):
                break
        log.error("result %s given up after %d attempts", msg_id, self._attempts)
        return Delivery(msg_id, False, None, self._attempts)

    def _publish(self, body: bytes, headers: dict[str, str]) -> None:
        connection = pika.BlockingConnection(self._params)
        try:
            channel = connection.channel()
            channel.confirm_delivery()
            channel.basic_publish(
                self._route.exchange,
                self._route.routing_key,
                body,
                properties=pika.BasicProperties(
                    content_type="application/json",
                    delivery_mode=pika.DeliveryMode.Persistent,
                    headers=dict(headers),
                ),
                mandatory=True,
            )
        finally:
            if connection.is_open:
                connection.close()

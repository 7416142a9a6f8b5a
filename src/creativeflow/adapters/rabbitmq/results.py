"""Consumes n8n's results from the results queue, with manual acks, and settles each message the
way its handler says, only once the handler has finished (so after the change it made committed).

    exchange --results_routing_key--> results queue (durable; quorum when it can be)
         ^                                 |  nack, requeue=False: refused, or out of attempts
         |                                 v
         |                            <queue>.dead (durable): for an operator to look at
         |
    <queue>.retry (durable, classic) <-- a copy, with a per-message expiration, when the handler
         |                               asks for a retry; the original is then acked
         +-- expired: dead-lettered back to the results queue (default exchange, its name)

One consumer per process, in a thread of its own with its own pika ``BlockingConnection`` (pika
is not thread-safe): it receives up to ``prefetch`` messages, hands each to the asyncio handler on
the app's event loop (``run_coroutine_threadsafe``), and settles it back on its own thread through
``add_callback_threadsafe`` when the handler is done. The connection is reopened after a loss,
``reconnect_delay`` later; messages unsettled then are delivered again by the broker, and the
handler's de-duplication (the ``webhook-id``) makes a second delivery change nothing.

A retry carries ``x-creativeflow-attempt`` (1 on the first delivery); after ``max_attempts`` the
message is dead-lettered instead, so no message circulates for ever.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import logging
import threading
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import pika
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import AMQPError, ConnectionWrongStateError
from pika.spec import Basic, BasicProperties

from creativeflow.adapters.rabbitmq.config import RabbitConfig, connection_parameters
from creativeflow.adapters.rabbitmq.topology import declare_results_topology

log = logging.getLogger(__name__)

ATTEMPT_HEADER = "x-creativeflow-attempt"
REASON_HEADER = "x-creativeflow-retry-reason"


class SettlementKind(enum.StrEnum):
    ACK = "acked"
    RETRY = "retried"
    DEAD_LETTER = "dead_lettered"


@dataclass(frozen=True, slots=True)
class Settlement:
    """What to do with one message: ``reason`` is for logs (never a secret)."""

    kind: SettlementKind
    reason: str = ""

    @classmethod
    def ack(cls, reason: str = "") -> Settlement:
        return cls(SettlementKind.ACK, reason)

    @classmethod
    def retry(cls, reason: str) -> Settlement:
        return cls(SettlementKind.RETRY, reason)

    @classmethod
    def dead_letter(cls, reason: str) -> Settlement:
        return cls(SettlementKind.DEAD_LETTER, reason)


ResultHandler = Callable[[Mapping[str, str], bytes], Awaitable[Settlement]]
SettlementObserver = Callable[[SettlementKind], None]


@dataclass(frozen=True, slots=True)
class ResultsConfig:
    queue: str = "creativeflow.n8n.results"
    routing_key: str = "generation.result"
    prefetch: int = 8
    retry_delay_seconds: float = 10.0
    max_attempts: int = 30
    reconnect_delay: float = 2.0
    # how long stop() lets the messages being handled finish before closing the connection
    drain_timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.prefetch < 1 or self.max_attempts < 1 or self.retry_delay_seconds <= 0:
            raise ValueError("prefetch and max_attempts must be at least 1, the delay positive")

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.queue}.dead"

    @property
    def retry_queue(self) -> str:
        return f"{self.queue}.retry"


def message_headers(properties: BasicProperties) -> dict[str, str]:
    """The message's headers with lower-case names and text values (AMQP may carry bytes)."""
    found: dict[str, str] = {}
    for name, value in (properties.headers or {}).items():
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                continue
        if isinstance(value, str | int):
            found[str(name).lower()] = str(value)
    return found


def printable_webhook_id(text: str) -> str:
    """A webhook-id as a log line may show it: its printable characters, at most 255 (an AMQP
    header may hold anything)."""
    return "".join(c for c in text[:255] if c.isprintable()) or "(no webhook-id)"


def attempt_of(properties: BasicProperties) -> int:
    raw = (properties.headers or {}).get(ATTEMPT_HEADER, 1)
    try:
        return max(1, int(raw))
    except (TypeError, ValueError):
        return 1


class ResultsConsumer:
    """The results queue's consumer thread. :meth:`start` with the event loop the handler runs
    on; :meth:`stop` (blocking: call it off the loop) cancels the consumer, lets the messages in
    hand finish for ``drain_timeout`` and closes."""

    def __init__(
        self,
        rabbit: RabbitConfig,
        config: ResultsConfig,
        handler: ResultHandler,
        *,
        on_settled: SettlementObserver | None = None,
    ) -> None:
        self._rabbit = rabbit
        self._config = config
        self._handler = handler
        self._on_settled = on_settled or (lambda kind: None)
        self._params = connection_parameters(rabbit)
        self._params.client_properties = {"connection_name": f"{rabbit.connection_name}-results"}
        self._stop = threading.Event()
        self._consuming = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._in_hand: set[Future[Settlement]] = set()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ResultsConsumer(queue={self._config.queue!r}, url={self._rabbit.safe_url!r})"

    @property
    def consuming(self) -> bool:
        """Connected, with the consumer registered on the results queue."""
        return self._consuming.is_set()

    async def check(self) -> bool:
        return self.consuming

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._thread is not None:
            raise RuntimeError("the results consumer was already started")
        self._loop = loop
        self._thread = threading.Thread(target=self._run, name="results-consumer", daemon=True)
        self._thread.start()

    def wait_until_consuming(self, timeout: float) -> bool:
        return self._consuming.wait(timeout)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(self._config.drain_timeout + self._rabbit.connect_timeout + 5)
            if self._thread.is_alive():
                log.warning("the results consumer thread did not stop in time")

    async def aclose(self) -> None:
        await asyncio.to_thread(self.stop)

    # -- the consumer thread ---------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._session()
            except (AMQPError, OSError) as exc:
                log.warning(
                    "results consumer lost RabbitMQ at %s (%r); reconnecting in %ss",
                    self._rabbit.safe_url,
                    exc,
                    self._config.reconnect_delay,
                )
            except Exception:  # the thread must outlive a bug in one session
                log.exception("results consumer session failed; reconnecting")
            finally:
                self._consuming.clear()
            self._stop.wait(self._config.reconnect_delay)
        log.info("results consumer stopped")

    def _session(self) -> None:
        connection = pika.BlockingConnection(self._params)
        try:
            declare_results_topology(connection, self._rabbit, self._config)
            channel = connection.channel()
            channel.basic_qos(prefetch_count=self._config.prefetch)
            retries = connection.channel()
            retries.confirm_delivery()
            on_message = functools.partial(self._on_message, connection, retries)
            tag = channel.basic_consume(self._config.queue, on_message_callback=on_message)
            self._consuming.set()
            log.info(
                "consuming n8n results from %s at %s", self._config.queue, self._rabbit.safe_url
            )
            while not self._stop.is_set():
                connection.process_data_events(time_limit=0.2)
            self._consuming.clear()
            channel.basic_cancel(tag)
            self._drain(connection)
        finally:
            if connection.is_open:
                try:
                    connection.close()
                except AMQPError as exc:
                    log.debug("ignoring error closing the results connection: %r", exc)

    def _drain(self, connection: pika.BlockingConnection) -> None:
        """Let the messages in hand finish and be settled; those that do not in time come back."""
        waited = 0.0
        while waited < self._config.drain_timeout:
            with self._lock:
                if not self._in_hand:
                    break
            connection.process_data_events(time_limit=0.1)
            waited += 0.1
        connection.process_data_events(time_limit=0)

    def _on_message(
        self,
        connection: pika.BlockingConnection,
        retries: BlockingChannel,
        channel: BlockingChannel,
        method: Basic.Deliver,
        properties: BasicProperties,
        body: bytes,
    ) -> None:
        assert self._loop is not None
        headers = message_headers(properties)
        future = asyncio.run_coroutine_threadsafe(self._handle(headers, body), self._loop)
        with self._lock:
            self._in_hand.add(future)
        settle = functools.partial(
            self._settle, channel, retries, method.delivery_tag, properties, body, future
        )

        def settle_on_consumer_thread(done: Future[Settlement]) -> None:
            try:
                connection.add_callback_threadsafe(settle)
            except (ConnectionWrongStateError, AMQPError):
                log.warning("results connection gone before a message was settled; it comes back")
                with self._lock:
                    self._in_hand.discard(done)

        future.add_done_callback(settle_on_consumer_thread)

    async def _handle(self, headers: Mapping[str, str], body: bytes) -> Settlement:
        try:
            return await self._handler(headers, body)
        except Exception as exc:  # a handler that raises is retried, never lost
            log.exception("result handler failed")
            return Settlement.retry(type(exc).__name__)

    def _settle(
        self,
        channel: BlockingChannel,
        retries: BlockingChannel,
        tag: int,
        properties: BasicProperties,
        body: bytes,
        future: Future[Settlement],
    ) -> None:
        with self._lock:
            self._in_hand.discard(future)
        settlement = future.result() if not future.cancelled() else Settlement.retry("cancelled")
        if not channel.is_open:
            return  # the broker gives the message to a consumer again
        kind = settlement.kind
        if kind is SettlementKind.RETRY:
            attempt = attempt_of(properties)
            if attempt >= self._config.max_attempts:
                log.error(
                    "result message %s dead-lettered after %d attempts (last: %s)",
                    printable_webhook_id(message_headers(properties).get("webhook-id", "")),
                    attempt,
                    settlement.reason,
                )
                kind = SettlementKind.DEAD_LETTER
            else:
                self._publish_retry(retries, properties, body, attempt + 1, settlement.reason)
        if kind is SettlementKind.DEAD_LETTER:
            channel.basic_nack(tag, requeue=False)
        else:
            channel.basic_ack(tag)
        self._on_settled(kind)

    def _publish_retry(
        self,
        retries: BlockingChannel,
        properties: BasicProperties,
        body: bytes,
        attempt: int,
        reason: str,
    ) -> None:
        """A copy of the message, confirmed, in the retry queue; the original is acked after."""
        headers: dict[str, Any] = dict(properties.headers or {})
        headers[ATTEMPT_HEADER] = attempt
        headers[REASON_HEADER] = reason[:200]
        retries.basic_publish(
            "",
            self._config.retry_queue,
            body,
            properties=pika.BasicProperties(
                content_type=properties.content_type,
                delivery_mode=pika.DeliveryMode.Persistent,
                message_id=properties.message_id,
                correlation_id=properties.correlation_id,
                type=properties.type,
                timestamp=properties.timestamp,
                headers=headers,
                expiration=str(int(self._config.retry_delay_seconds * 1000)),
            ),
            mandatory=True,
        )

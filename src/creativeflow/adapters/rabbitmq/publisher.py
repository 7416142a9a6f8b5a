"""Publishes generation jobs to RabbitMQ with publisher confirms, from asyncio.

pika's ``BlockingConnection`` is not thread-safe, so each worker thread of a bounded pool keeps its
own connection and confirm-mode channel (thread-local, opened on first use), and ``publish`` hands
the blocking call to that pool with ``run_in_executor``. A publish succeeds only when the broker
confirmed the message *and* routed it to a queue (``mandatory=True``).

When a connection is lost the worker reconnects once and publishes once more; after that, or when
the message is unroutable or nacked, ``publish`` raises :class:`PublishFailed`. A retry after a
connection lost mid-publish may deliver the job twice, so consumers de-duplicate on
``message_id`` (= ``job_id``).

A ``BlockingConnection`` only answers heartbeats while its thread does I/O, and the broker drops a
connection silent for two heartbeats. So an idle worker processes its connection's pending I/O
every quarter heartbeat (:class:`WorkerPool`'s idle hook), and before each publish, so a
connection that died anyway is replaced before the message is sent. Each worker closes its own
connection when the pool shuts down.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import pika
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import (
    AMQPChannelError,
    AMQPConnectionError,
    AMQPError,
    NackError,
    UnroutableError,
)

from creativeflow.adapters.rabbitmq.config import RabbitConfig, connection_parameters
from creativeflow.adapters.rabbitmq.errors import (
    BrokerUnreachable,
    JobNacked,
    JobUnroutable,
    PublishFailed,
    PublishTimedOut,
)
from creativeflow.adapters.rabbitmq.topology import DeclaredTopology, declare_topology
from creativeflow.adapters.rabbitmq.worker_pool import WorkerPool
from creativeflow.domain.jobs import CANCEL_SCHEMA, JOB_SCHEMA, JobCancellation, JobMessage

log = logging.getLogger(__name__)

_T = TypeVar("_T")
_M = TypeVar("_M", JobMessage, JobCancellation)

# a channel or connection in one of these states is thrown away and opened again
_LINK_ERRORS: tuple[type[BaseException], ...] = (AMQPConnectionError, AMQPChannelError, OSError)


class JobPublisher(Protocol):
    """The port the use cases publish through (mirrors ``creativeflow.services.ports``)."""

    async def publish(self, job: JobMessage) -> None: ...

    async def cancel(self, cancellation: JobCancellation) -> None: ...

    async def check(self) -> bool: ...


def job_properties(job: JobMessage, app_id: str, now: float) -> pika.BasicProperties:
    return _properties(
        job, app_id, now, {"schema": JOB_SCHEMA, "stage": job.stage.value, "attempt": job.attempt}
    )


def cancellation_properties(
    cancellation: JobCancellation, app_id: str, now: float
) -> pika.BasicProperties:
    return _properties(
        cancellation,
        app_id,
        now,
        {"schema": CANCEL_SCHEMA, "stage": cancellation.stage.value, "job_id": cancellation.job_id},
    )


def _properties(
    message: JobMessage | JobCancellation, app_id: str, now: float, headers: dict[str, Any]
) -> pika.BasicProperties:
    return pika.BasicProperties(
        content_type="application/json",
        content_encoding="utf-8",
        delivery_mode=pika.DeliveryMode.Persistent,
        message_id=message.message_id,
        correlation_id=message.correlation_id,
        type=message.event,
        timestamp=int(now),
        app_id=app_id,
        headers=headers,
    )


class _ThreadLink(threading.local):
    """The connection and channel of the current worker thread."""

    connection: pika.BlockingConnection | None = None
    channel: BlockingChannel | None = None


class PikaJobPublisher:
    def __init__(self, config: RabbitConfig) -> None:
        self._config = config
        self._params = connection_parameters(config)
        self._pool = WorkerPool(
            config.publish_workers,
            "rabbit-publisher",
            idle_interval=config.heartbeat / 4 if config.heartbeat > 0 else None,
            on_idle=self._keep_thread_link_alive,
            on_exit=self._drop_thread_link,
        )
        self._link = _ThreadLink()
        self._lock = threading.Lock()
        self._connections: set[pika.BlockingConnection] = set()
        self._closed = False

    def __repr__(self) -> str:
        return f"PikaJobPublisher({self._config!r})"

    @property
    def config(self) -> RabbitConfig:
        return self._config

    @property
    def connection_count(self) -> int:
        """How many worker connections are open now (one at most per pool thread)."""
        with self._lock:
            return len(self._connections)

    # -- asyncio face -------------------------------------------------------------------------

    async def publish(self, job: JobMessage) -> None:
        """Return once the broker confirmed ``job``; otherwise raise :class:`PublishFailed`."""
        await self._send(job, self._config.routing_key, job_properties)

    async def cancel(self, cancellation: JobCancellation) -> None:
        """Return once the broker confirmed the cancellation onto the cancellation queue."""
        await self._send(cancellation, self._config.cancel_routing_key, cancellation_properties)

    async def _send(
        self,
        message: _M,
        routing_key: str,
        properties: Callable[[_M, str, float], pika.BasicProperties],
    ) -> None:
        body = message.encode()
        deadline = time.monotonic() + self._config.confirm_timeout

        def stamped() -> pika.BasicProperties:
            return properties(message, self._config.connection_name, time.time())

        try:
            await asyncio.wait_for(
                self._run_in_pool(
                    self._publish_blocking, message.job_id, routing_key, body, stamped, deadline
                ),
                timeout=self._config.confirm_timeout,
            )
        except TimeoutError:
            raise PublishTimedOut(
                f"no confirmation within {self._config.confirm_timeout}s", job_id=message.job_id
            ) from None

    def send_blocking(
        self,
        message_id: str,
        routing_key: str,
        body: bytes,
        properties: Callable[[], pika.BasicProperties],
    ) -> None:
        """``publish`` for a caller on a thread of its own (never the event loop): hand the
        message to a worker and wait for the broker's confirm, all within ``confirm_timeout``;
        otherwise raise :class:`PublishFailed`."""
        deadline = time.monotonic() + self._config.confirm_timeout
        if self._closed:
            raise BrokerUnreachable("the publisher is closed", job_id=message_id)
        context = contextvars.copy_context()
        try:
            future = self._pool.submit(
                context.run,
                self._publish_blocking,
                message_id,
                routing_key,
                body,
                properties,
                deadline,
            )
        except RuntimeError as exc:  # the pool was shut down meanwhile
            raise BrokerUnreachable("the publisher is closed", job_id=message_id) from exc
        try:
            future.result(timeout=self._config.confirm_timeout)
        except TimeoutError:
            future.cancel()
            raise PublishTimedOut(
                f"no confirmation within {self._config.confirm_timeout}s", job_id=message_id
            ) from None

    async def check(self) -> bool:
        """Readiness: a worker can reach the broker and the exchange exists."""
        timeout = self._config.connect_timeout * 2
        try:
            ready = await asyncio.wait_for(self._run_in_pool(self._check_blocking), timeout)
            return bool(ready)
        except (TimeoutError, PublishFailed):
            return False

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    # -- blocking face ------------------------------------------------------------------------

    def declare_topology(self) -> DeclaredTopology:
        """Declare the exchanges and queues on a short-lived connection of its own."""
        try:
            connection = pika.BlockingConnection(self._params)
        except (AMQPError, OSError) as exc:
            raise BrokerUnreachable(
                f"cannot connect to {self._config.safe_url} to declare the topology: {exc!r}"
            ) from exc
        try:
            return declare_topology(connection, self._config)
        finally:
            _close_quietly(connection)

    def close(self) -> None:
        """Wait for running publishes, drop queued ones; each worker closes its own connection."""
        self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:  # workers are gone; anything left here is closed from this thread
            leftovers = list(self._connections)
            self._connections.clear()
        for connection in leftovers:
            _close_quietly(connection)
        log.info("job publisher closed")

    # -- inside a worker thread ---------------------------------------------------------------

    async def _run_in_pool(self, fn: Callable[..., _T], *args: Any) -> _T:
        loop = asyncio.get_running_loop()
        if self._closed:
            raise BrokerUnreachable("the job publisher is closed")
        try:
            # the worker thread logs with the caller's context (its correlation id)
            context = contextvars.copy_context()
            future = loop.run_in_executor(self._pool, context.run, fn, *args)
        except RuntimeError as exc:  # the pool was shut down meanwhile
            raise BrokerUnreachable("the job publisher is closed") from exc
        return await future

    def _publish_blocking(
        self,
        job_id: str,
        routing_key: str,
        body: bytes,
        stamped: Callable[[], pika.BasicProperties],
        deadline: float,
    ) -> None:
        properties = stamped()
        last_error: BaseException | None = None
        maybe_sent = False
        for attempt in (1, 2):
            if time.monotonic() >= deadline:
                break
            sending = False
            try:
                channel = self._thread_channel()
                sending = True
                channel.basic_publish(
                    self._config.exchange,
                    routing_key,
                    body,
                    properties=properties,
                    mandatory=True,
                )
            except UnroutableError:
                raise JobUnroutable(
                    f"no queue bound to exchange {self._config.exchange!r} "
                    f"for routing key {routing_key!r}",
                    job_id=job_id,
                ) from None
            except NackError:
                raise JobNacked("the broker nacked the message", job_id=job_id) from None
            except _LINK_ERRORS as exc:
                self._drop_thread_link()
                last_error = exc
                maybe_sent = maybe_sent or sending
                if attempt == 1:
                    log.warning(
                        "publish for job %s lost its connection (%r); reconnecting", job_id, exc
                    )
                continue
            except AMQPError as exc:  # a protocol fault: no point retrying on a new connection
                self._drop_thread_link()
                raise BrokerUnreachable(
                    f"publishing failed: {exc!r}", job_id=job_id, sent=sending
                ) from exc
            if time.monotonic() > deadline:
                log.warning("message for job %s was confirmed after its caller gave up", job_id)
            log.debug("published message for job %s (attempt %d)", job_id, attempt)
            return
        if last_error is None:
            raise PublishTimedOut(
                "the caller's time ran out before a worker was free", job_id=job_id
            )
        raise BrokerUnreachable(
            f"publishing failed after one reconnect: {last_error!r}",
            job_id=job_id,
            sent=maybe_sent,
        )

    def _check_blocking(self) -> bool:
        try:
            channel = self._thread_channel()
            channel.exchange_declare(self._config.exchange, passive=True)
        except _LINK_ERRORS as exc:
            self._drop_thread_link()
            log.warning("job publisher is not ready: %r", exc)
            return False
        return True

    def _thread_channel(self) -> BlockingChannel:
        """This thread's confirm-mode channel, opened now if it has none or it died while idle."""
        link = self._link
        if link.connection is not None and link.channel is not None:
            if self._idle_link_alive(link.connection, link.channel):
                return link.channel
            self._drop_thread_link()
        if self._closed:
            raise AMQPConnectionError("the publisher is closed")
        connection = pika.BlockingConnection(self._params)
        link.connection = connection
        with self._lock:
            self._connections.add(connection)
        channel = connection.channel()
        channel.confirm_delivery()
        link.channel = channel
        log.info(
            "job publisher thread %s connected to %s",
            threading.current_thread().name,
            self._config.safe_url,
        )
        return channel

    def _keep_thread_link_alive(self) -> None:
        link = self._link
        if link.connection is None or link.channel is None:
            return
        if not self._idle_link_alive(link.connection, link.channel):
            self._drop_thread_link()

    def _idle_link_alive(
        self, connection: pika.BlockingConnection, channel: BlockingChannel
    ) -> bool:
        """Process pending I/O without waiting: answers heartbeats, notices a closed connection."""
        try:
            connection.process_data_events(time_limit=0)
        except _LINK_ERRORS as exc:
            log.info("job publisher connection died while idle (%r); reopening", exc)
            return False
        return bool(channel.is_open)

    def _drop_thread_link(self) -> None:
        link = self._link
        connection = link.connection
        link.connection = None
        link.channel = None
        if connection is None:
            return
        with self._lock:
            self._connections.discard(connection)
        _close_quietly(connection)


def _close_quietly(connection: pika.BlockingConnection) -> None:
    try:
        if connection.is_open:
            connection.close()
    except (AMQPError, OSError) as exc:
        log.debug("ignoring error while closing a connection: %r", exc)

"""The n8n simulator: consumes generation jobs and answers each with a signed callback.

One consumer thread owns the pika ``BlockingConnection`` (it is not thread-safe); a small pool of
answer threads waits ``delay``, posts the callback, and asks the consumer thread to ack through
``add_callback_threadsafe``. An invalid job is nacked without requeue, so the queue's dead-letter
exchange moves it to the dead-letter queue. A job is acked once its callback got a 2xx or was given
up; on ``stop`` the jobs not yet answered stay unacked, and the broker hands them out again.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any

import httpx
import jsonschema
import pika
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import AMQPError, ConnectionWrongStateError
from pika.spec import Basic, BasicProperties

from creativeflow.adapters.rabbitmq.config import redact_url
from creativeflow.devstack.n8n_simulator.outcomes import (
    DEFAULT_ASSET_BASE_URL,
    Outcome,
    OutcomeKind,
    build_callback,
    callback_event,
    callback_url,
    decide_outcome,
)
from creativeflow.devstack.n8n_simulator.sender import CallbackSender

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, repr=False)
class SimulatorConfig:
    rabbitmq_url: str
    secret: str = field(repr=False)
    queue: str = "creativeflow.n8n.jobs"
    delay: float = 0.5
    platform_failure_rate: float = 0.0
    content_rejection_rate: float = 0.0
    seed: int | None = None
    concurrency: int = 8
    per_stage_routes: bool = False
    asset_base_url: str = DEFAULT_ASSET_BASE_URL
    callback_timeout: float = 5.0
    callback_attempts: int = 4
    retry_backoff: float = 0.5
    reconnect_delay: float = 2.0
    connection_name: str = "creativeflow-n8n-simulator"

    def __post_init__(self) -> None:
        for name in ("platform_failure_rate", "content_rejection_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.platform_failure_rate + self.content_rejection_rate > 1.0:
            raise ValueError("the failure rates add up to more than 1")
        if self.concurrency < 1 or self.delay < 0:
            raise ValueError("concurrency must be at least 1 and delay not negative")

    def __repr__(self) -> str:
        return (
            f"SimulatorConfig(rabbitmq_url={redact_url(self.rabbitmq_url)!r}, "
            f"queue={self.queue!r}, delay={self.delay!r}, "
            f"platform_failure_rate={self.platform_failure_rate!r}, "
            f"content_rejection_rate={self.content_rejection_rate!r}, seed={self.seed!r})"
        )


@dataclass(slots=True)
class SimulatorStats:
    handled: int = 0  # acked or rejected
    callbacks_delivered: int = 0
    callbacks_failed: int = 0
    rejected: int = 0
    held: int = 0


def load_job_validator() -> jsonschema.Draft202012Validator:
    schema_text = (files("creativeflow") / "schemas" / "generation-job.v1.json").read_text()
    schema = json.loads(schema_text)
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


class N8nSimulator:
    def __init__(self, config: SimulatorConfig) -> None:
        self._config = config
        self._validator = load_job_validator()
        self._rng = random.Random(config.seed)  # drawn from the consumer thread only
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._startup_error: BaseException | None = None
        self._stats_lock = threading.Lock()
        self._stats = SimulatorStats()

    def __repr__(self) -> str:
        return f"N8nSimulator({self._config!r})"

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self, timeout: float = 15.0) -> N8nSimulator:
        """Consume in a background thread; return once the consumer is registered."""
        if self._thread is not None:
            raise RuntimeError("the simulator was already started")
        self._thread = threading.Thread(
            target=self._run, kwargs={"fail_fast": True}, name="n8n-simulator", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise TimeoutError(f"the simulator did not start consuming within {timeout}s")
        if self._startup_error is not None:
            self._thread.join(timeout)
            raise self._startup_error
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the consumer to stop and wait for it: answers under way finish, the rest requeue."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("the simulator's consumer thread did not stop within %ss", timeout)

    def request_stop(self) -> None:
        """Safe from a signal handler: the consumer loop notices within a poll interval."""
        self._stop.set()

    def run(self) -> None:
        """Consume in the calling thread until :meth:`request_stop`, reconnecting as needed."""
        self._run(fail_fast=False)

    def __enter__(self) -> N8nSimulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- counters --------------------------------------------------------------------------------

    @property
    def handled(self) -> int:
        with self._stats_lock:
            return self._stats.handled

    def stats(self) -> SimulatorStats:
        with self._stats_lock:
            return dataclasses.replace(self._stats)

    def _count(self, **increments: int) -> None:
        with self._stats_lock:
            for name, amount in increments.items():
                setattr(self._stats, name, getattr(self._stats, name) + amount)

    # -- consumer thread -------------------------------------------------------------------------

    def _run(self, *, fail_fast: bool) -> None:
        timeout = httpx.Timeout(self._config.callback_timeout)
        with httpx.Client(timeout=timeout) as http:
            sender = CallbackSender(
                http,
                self._config.secret,
                attempts=self._config.callback_attempts,
                backoff=self._config.retry_backoff,
                stop=self._stop,
            )
            while not self._stop.is_set():
                try:
                    self._consume_session(sender)
                except (AMQPError, OSError) as exc:
                    if fail_fast and not self._ready.is_set():
                        self._startup_error = exc
                        self._ready.set()
                        return
                    log.warning(
                        "simulator lost RabbitMQ (%r); reconnecting in %ss",
                        exc,
                        self._config.reconnect_delay,
                    )
                    self._stop.wait(self._config.reconnect_delay)
        log.info("n8n simulator stopped after %d job(s)", self.handled)

    def _connection_parameters(self) -> pika.URLParameters:
        params = pika.URLParameters(self._config.rabbitmq_url)
        params.socket_timeout = 5.0
        params.heartbeat = 30
        params.connection_attempts = 1
        params.client_properties = {"connection_name": self._config.connection_name}
        return params

    def _consume_session(self, sender: CallbackSender) -> None:
        connection = pika.BlockingConnection(self._connection_parameters())
        try:
            channel = connection.channel()
            channel.basic_qos(prefetch_count=self._config.concurrency)
            answers = ThreadPoolExecutor(self._config.concurrency, "n8n-simulator-answer")
            try:
                on_message = functools.partial(self._on_message, connection, answers, sender)
                tag = channel.basic_consume(self._config.queue, on_message_callback=on_message)
                log.info(
                    "n8n simulator consuming %s at %s",
                    self._config.queue,
                    redact_url(self._config.rabbitmq_url),
                )
                self._ready.set()
                while not self._stop.is_set():
                    connection.process_data_events(time_limit=0.2)
                channel.basic_cancel(tag)
            finally:
                # answers under way finish; queued ones are dropped and will be redelivered
                answers.shutdown(wait=True, cancel_futures=True)
            connection.process_data_events(time_limit=0)  # send the acks the answers asked for
        finally:
            if connection.is_open:
                try:
                    connection.close()
                except AMQPError as exc:
                    log.debug("ignoring error closing the simulator connection: %r", exc)

    def _on_message(
        self,
        connection: pika.BlockingConnection,
        answers: ThreadPoolExecutor,
        sender: CallbackSender,
        channel: BlockingChannel,
        method: Basic.Deliver,
        properties: BasicProperties,
        body: bytes,
    ) -> None:
        tag = method.delivery_tag
        job = self._parse_job(body)
        if job is None:
            log.warning(
                "rejecting invalid job message %s to the dead-letter queue", properties.message_id
            )
            channel.basic_nack(tag, requeue=False)
            self._count(handled=1, rejected=1)
            return
        outcome = decide_outcome(
            job["parameters"]["prompt"],
            self._rng,
            self._config.platform_failure_rate,
            self._config.content_rejection_rate,
        )
        if outcome.kind is OutcomeKind.HOLD:
            log.info("holding job %s: no callback will be sent", job["job_id"])
            channel.basic_ack(tag)
            self._count(handled=1, held=1)
            return
        ack = functools.partial(self._ack_from_answer_thread, connection, channel, tag)
        answers.submit(self._answer, sender, job, outcome, ack)

    def _parse_job(self, body: bytes) -> dict[str, Any] | None:
        try:
            job = json.loads(body)
        except ValueError as exc:
            log.warning("job message is not JSON: %s", exc)
            return None
        error = jsonschema.exceptions.best_match(self._validator.iter_errors(job))
        if error is not None:
            log.warning(
                "job message breaks the schema at %s: %s",
                "/".join(map(str, error.absolute_path)) or "(root)",
                error.message,
            )
            return None
        return job if isinstance(job, dict) else None

    # -- answer threads --------------------------------------------------------------------------

    def _answer(
        self,
        sender: CallbackSender,
        job: dict[str, Any],
        outcome: Outcome,
        ack: functools.partial[None],
    ) -> None:
        if self._stop.wait(self._config.delay):
            return  # stopping: unacked, so the broker redelivers it
        try:
            payload = build_callback(job, outcome, self._config.asset_base_url)
            url = callback_url(job, callback_event(job, outcome), self._config.per_stage_routes)
            for _ in range(2 if outcome.duplicate else 1):
                delivery = sender.send(url, payload)
                if delivery.delivered:
                    self._count(callbacks_delivered=1)
                else:
                    self._count(callbacks_failed=1)
                    log.error(
                        "job %s: %s callback not delivered; acking it anyway",
                        job["job_id"],
                        payload["event"],
                    )
        except Exception:  # an answer thread must always ack, or the job would sit unacked
            log.exception("job %s: answering failed; acking it anyway", job["job_id"])
        ack()

    def _ack_from_answer_thread(
        self, connection: pika.BlockingConnection, channel: BlockingChannel, tag: int
    ) -> None:
        try:
            connection.add_callback_threadsafe(functools.partial(self._ack, channel, tag))
        except ConnectionWrongStateError:
            log.warning("connection gone before delivery %d was acked; it will be redelivered", tag)

    def _ack(self, channel: BlockingChannel, tag: int) -> None:
        if channel.is_open:
            channel.basic_ack(tag)
            self._count(handled=1)

"""The n8n simulator's RabbitMQ mode: consumes generation jobs and answers each with a signed
callback, or a signed message on the results queue (the webhook mode is in ``webhook.py``; both
answer through :class:`JobAnswerer`).

One consumer thread owns the pika ``BlockingConnection`` (it is not thread-safe); a small pool of
answer threads waits ``delay``, posts the callback, and asks the consumer thread to ack through
``add_callback_threadsafe``. An invalid job is nacked without requeue, so the queue's dead-letter
exchange moves it to the dead-letter queue. A job is acked once its callback got a 2xx or was given
up; on ``stop`` the jobs not yet answered stay unacked, and the broker hands them out again.
"""

from __future__ import annotations

import functools
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pika
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import AMQPError, ConnectionWrongStateError
from pika.spec import Basic, BasicProperties

from creativeflow.adapters.rabbitmq.config import redact_url
from creativeflow_devstack.n8n_simulator.answering import (
    AnswerConfig,
    JobAnswerer,
    SimulatorStats,
    load_job_validator,
)
from creativeflow_devstack.n8n_simulator.outcomes import (
    DEFAULT_ASSET_BASE_URL,
    AssetPublisher,
    OutcomeKind,
)
from creativeflow_devstack.n8n_simulator.sender import ResultSender, ResultsRoute

__all__ = ["N8nSimulator", "SimulatorConfig", "SimulatorStats", "load_job_validator"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, repr=False)
class SimulatorConfig:
    rabbitmq_url: str
    secret: str = field(repr=False)
    queue: str = "creativeflow.n8n.jobs"
    # the orchestrator's cancellation queue (declared by it); None: cancellations not consumed
    cancel_queue: str | None = None
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
    # set: results go to the orchestrator's results queue (ENABLE_N8N_RESULTS_QUEUE) instead of
    # being posted to the job's callback URL
    results_route: ResultsRoute | None = None
    # makes each asset for real (the local stack's provider store); None: URLs lead nowhere
    publish_asset: AssetPublisher | None = None

    def __post_init__(self) -> None:
        self.answering()  # checks the answering settings

    def answering(self) -> AnswerConfig:
        """The settings of how jobs are answered, shared with the webhook mode."""
        return AnswerConfig(
            secret=self.secret,
            delay=self.delay,
            platform_failure_rate=self.platform_failure_rate,
            content_rejection_rate=self.content_rejection_rate,
            seed=self.seed,
            concurrency=self.concurrency,
            per_stage_routes=self.per_stage_routes,
            asset_base_url=self.asset_base_url,
            callback_timeout=self.callback_timeout,
            callback_attempts=self.callback_attempts,
            retry_backoff=self.retry_backoff,
            results_route=self.results_route,
            publish_asset=self.publish_asset,
        )

    def __repr__(self) -> str:
        return (
            f"SimulatorConfig(rabbitmq_url={redact_url(self.rabbitmq_url)!r}, "
            f"queue={self.queue!r}, delay={self.delay!r}, "
            f"platform_failure_rate={self.platform_failure_rate!r}, "
            f"content_rejection_rate={self.content_rejection_rate!r}, seed={self.seed!r})"
        )


class N8nSimulator:
    def __init__(self, config: SimulatorConfig) -> None:
        self._config = config
        self._stop = threading.Event()
        # outcome draws happen on the consumer thread only, so a seed repeats in delivery order
        self._answerer = JobAnswerer(config.answering(), self._stop)
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._startup_error: BaseException | None = None

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
        return self._answerer.handled

    def stats(self) -> SimulatorStats:
        return self._answerer.stats()

    # -- consumer thread -------------------------------------------------------------------------

    def _run(self, *, fail_fast: bool) -> None:
        with self._answerer.sender() as sender:
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

    def _consume_session(self, sender: ResultSender) -> None:
        connection = pika.BlockingConnection(self._connection_parameters())
        try:
            channel = connection.channel()
            channel.basic_qos(prefetch_count=self._config.concurrency)
            answers = ThreadPoolExecutor(self._config.concurrency, "n8n-simulator-answer")
            try:
                on_message = functools.partial(self._on_message, connection, answers, sender)
                tag = channel.basic_consume(self._config.queue, on_message_callback=on_message)
                if self._config.cancel_queue is not None:
                    channel.basic_consume(
                        self._config.cancel_queue, on_message_callback=self._on_cancellation
                    )
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
        sender: ResultSender,
        channel: BlockingChannel,
        method: Basic.Deliver,
        properties: BasicProperties,
        body: bytes,
    ) -> None:
        tag = method.delivery_tag
        job = self._answerer.parse(body)
        if job is None:
            log.warning(
                "rejecting invalid job message %s to the dead-letter queue", properties.message_id
            )
            channel.basic_nack(tag, requeue=False)
            self._answerer.count(handled=1, rejected=1)
            return
        outcome = self._answerer.decide(job)
        if outcome.kind is OutcomeKind.HOLD:
            log.info("holding job %s: no callback will be sent", job["job_id"])
            channel.basic_ack(tag)
            self._answerer.count(handled=1, held=1)
            return
        ack = functools.partial(self._ack_from_answer_thread, connection, channel, tag)
        answers.submit(self._answerer.answer, sender, job, outcome, ack)

    def _on_cancellation(
        self,
        channel: BlockingChannel,
        method: Basic.Deliver,
        properties: BasicProperties,
        body: bytes,
    ) -> None:
        self._answerer.cancel(body)
        channel.basic_ack(method.delivery_tag)

    # -- answer threads --------------------------------------------------------------------------

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
            self._answerer.count(handled=1)

"""What the simulator does with a job once it has arrived, whichever way it came (RabbitMQ or the
webhook): check it against the JSON Schema, draw its outcome, wait ``delay``, post the signed
callback (or publish it to the results queue, with ``results_route``), count. Both modes share
one :class:`JobAnswerer`; only the way a job arrives and is settled (acked, or answered 202)
differs.

A cancellation (``creativeflow.generation-cancel.v1``) is remembered by job id; a job cancelled
before its answer is due is settled without a callback, as the n8n workflow does."""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any

import httpx
import jsonschema

from creativeflow.domain.jobs import JOB_SCHEMA, JOB_SCHEMAS_ACCEPTED
from creativeflow_devstack.n8n_simulator.outcomes import (
    DEFAULT_ASSET_BASE_URL,
    AssetPublisher,
    Outcome,
    build_callback,
    callback_event,
    callback_url,
    decide_outcome,
)
from creativeflow_devstack.n8n_simulator.sender import (
    CallbackSender,
    QueueResultSender,
    ResultSender,
    ResultsRoute,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, repr=False)
class AnswerConfig:
    """How jobs are answered: the callback secret, the pace, the failure shares, the retries."""

    secret: str = field(repr=False)
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
    # set: results are published to the orchestrator's results queue instead of posted back
    results_route: ResultsRoute | None = None
    # makes each asset for real (the local stack's provider store); None: URLs lead nowhere
    publish_asset: AssetPublisher | None = None

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
            f"AnswerConfig(delay={self.delay!r}, "
            f"platform_failure_rate={self.platform_failure_rate!r}, "
            f"content_rejection_rate={self.content_rejection_rate!r}, seed={self.seed!r}, "
            f"results_route={self.results_route!r})"
        )


@dataclass(slots=True)
class SimulatorStats:
    handled: int = 0  # acked or rejected (RabbitMQ); answered, held or rejected (webhook)
    callbacks_delivered: int = 0
    callbacks_failed: int = 0
    rejected: int = 0  # not JSON, or breaks the schema
    held: int = 0
    unauthorized: int = 0  # webhook mode: a job whose signature did not verify
    duplicates: int = 0  # webhook mode: a job id already taken, dropped
    faulted: int = 0  # webhook mode: refused on purpose (answer_dispatches_with)
    cancellations: int = 0  # cancellation messages received
    cancelled: int = 0  # jobs settled without a callback because they were cancelled


# cancellations remembered at most (the oldest forgotten first): far more than jobs in flight
REMEMBERED_CANCELLATIONS = 10_000


def _validator(file_name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((files("creativeflow") / "schemas" / file_name).read_text())
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def load_cancel_validator() -> jsonschema.Draft202012Validator:
    return _validator("generation-cancel.v1.json")


def load_job_validator(schema: str = JOB_SCHEMA) -> jsonschema.Draft202012Validator:
    """The validator of one accepted job schema (``creativeflow.generation-job.vN``)."""
    if schema not in JOB_SCHEMAS_ACCEPTED:
        raise ValueError(f"not an accepted job schema: {schema}")
    return _validator(schema.removeprefix("creativeflow.") + ".json")


class JobAnswerer:
    """Validates, decides and answers jobs, and keeps the counters; thread-safe.

    Outcome draws take a lock, so a seed gives the same outcomes in the same arrival order.
    """

    def __init__(self, config: AnswerConfig, stop: threading.Event) -> None:
        self._config = config
        self._stop = stop
        # a job of any accepted version is answered, as n8n's workflow does during a transition
        self._validators = {schema: load_job_validator(schema) for schema in JOB_SCHEMAS_ACCEPTED}
        self._rng = random.Random(config.seed)
        self._rng_lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self._stats = SimulatorStats()
        self._cancel_validator = load_cancel_validator()
        self._cancelled: OrderedDict[str, None] = OrderedDict()

    @property
    def config(self) -> AnswerConfig:
        return self._config

    # -- counters --------------------------------------------------------------------------------

    @property
    def handled(self) -> int:
        with self._stats_lock:
            return self._stats.handled

    def stats(self) -> SimulatorStats:
        with self._stats_lock:
            return dataclasses.replace(self._stats)

    def count(self, **increments: int) -> None:
        with self._stats_lock:
            for name, amount in increments.items():
                setattr(self._stats, name, getattr(self._stats, name) + amount)

    # -- on arrival ------------------------------------------------------------------------------

    def parse(self, body: bytes) -> dict[str, Any] | None:
        """The job if ``body`` is JSON that the job schema accepts, otherwise None (logged)."""
        try:
            job = json.loads(body)
        except ValueError as exc:
            log.warning("job message is not JSON: %s", exc)
            return None
        schema = job.get("schema") if isinstance(job, dict) else None
        validator = self._validators.get(str(schema), self._validators[JOB_SCHEMA])
        error = jsonschema.exceptions.best_match(validator.iter_errors(job))
        if error is not None:
            log.warning(
                "job message breaks the schema at %s: %s",
                "/".join(map(str, error.absolute_path)) or "(root)",
                error.message,
            )
            return None
        return job if isinstance(job, dict) else None

    def cancel(self, body: bytes) -> str | None:
        """Remember the job a cancellation names; its id, or None when ``body`` is not one."""
        try:
            message = json.loads(body)
        except ValueError:
            message = None
        if not isinstance(message, dict) or not self._cancel_validator.is_valid(message):
            log.warning("ignoring a message that is not a job cancellation")
            return None
        job_id = str(message["job_id"])
        with self._stats_lock:
            self._stats.cancellations += 1
            self._cancelled[job_id] = None
            if len(self._cancelled) > REMEMBERED_CANCELLATIONS:
                self._cancelled.popitem(last=False)
        log.info("job %s cancelled: its callback will not be sent", job_id)
        return job_id

    def is_cancelled(self, job_id: str) -> bool:
        with self._stats_lock:
            return job_id in self._cancelled

    def decide(self, job: dict[str, Any]) -> Outcome:
        with self._rng_lock:
            return decide_outcome(
                job["parameters"]["prompt"],
                self._rng,
                self._config.platform_failure_rate,
                self._config.content_rejection_rate,
            )

    @contextmanager
    def sender(self) -> Iterator[ResultSender]:
        """What sends the results, for as long as the ``with`` block lasts: an HTTP client
        posting callbacks, or a publisher to the results queue when ``results_route`` is set."""
        if self._config.results_route is not None:
            yield QueueResultSender(
                self._config.results_route,
                self._config.secret,
                attempts=self._config.callback_attempts,
                backoff=self._config.retry_backoff,
                stop=self._stop,
            )
            return
        with httpx.Client(timeout=httpx.Timeout(self._config.callback_timeout)) as http:
            yield CallbackSender(
                http,
                self._config.secret,
                attempts=self._config.callback_attempts,
                backoff=self._config.retry_backoff,
                stop=self._stop,
            )

    # -- on an answer thread ---------------------------------------------------------------------

    def answer(
        self,
        sender: ResultSender,
        job: dict[str, Any],
        outcome: Outcome,
        done: Callable[[], None],
    ) -> None:
        """Wait ``delay``, send the callback (twice for ``[duplicate]``), then call ``done``.

        When the simulator stops during the wait, nothing is sent and ``done`` is not called.
        """
        if self._stop.wait(self._config.delay + outcome.extra_wait):
            return
        if self.is_cancelled(job["job_id"]):
            self.count(cancelled=1)
            done()
            return
        try:
            payload = build_callback(
                job, outcome, self._config.asset_base_url, self._config.publish_asset
            )
            url = callback_url(job, callback_event(job, outcome), self._config.per_stage_routes)
            for _ in range(2 if outcome.duplicate else 1):
                delivery = sender.send(url, payload)
                if delivery.delivered:
                    self.count(callbacks_delivered=1)
                else:
                    self.count(callbacks_failed=1)
                    log.error(
                        "job %s: %s callback not delivered; settling it anyway",
                        job["job_id"],
                        payload["event"],
                    )
        except Exception:  # an answer must always settle its job, or it would sit forever
            log.exception("job %s: answering failed; settling it anyway", job["job_id"])
        done()

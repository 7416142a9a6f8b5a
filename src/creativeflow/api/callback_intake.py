"""Reading one n8n result, whichever way it came: a POST to a callback route or a message on the
results queue. Both carry the same Standard Webhooks headers (``webhook-id``,
``webhook-timestamp``, ``webhook-signature``) over the same raw JSON body, so both go through
:func:`read_callback`: the signature is checked over the raw bytes before anything is parsed, then
the body is validated and turned into the :class:`CallbackReport` the callback service applies.
A result refused here changes nothing.

:class:`QueuedResultIntake` is what the results-queue consumer calls for each message: it reads
the message with :func:`read_callback`, hands it to the same :class:`CallbackService` the routes
use, and says how the message is to be settled (acked, retried later, or dead-lettered).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence

from pydantic import ValidationError

from creativeflow.adapters.rabbitmq.results import Settlement, printable_webhook_id
from creativeflow.api.schemas import CallbackPayload, asset_rules
from creativeflow.domain.errors import DomainError
from creativeflow.domain.jobs import CallbackEvent, FailureCategory
from creativeflow.domain.model import Failure
from creativeflow.observability.metrics import Metrics
from creativeflow.services.callbacks import CallbackReport, CallbackService
from creativeflow.settings import Settings
from creativeflow.webhook_signature import SignatureError, verify

log = logging.getLogger(__name__)


class CallbackRefused(Exception):
    """Why a result cannot be taken: its HTTP status (401 signature, 422 body) and a reason that
    is safe to show the sender (it never holds a secret or the body)."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail

    @property
    def signature_refused(self) -> bool:
        return self.status_code == 401


def read_callback(
    settings: Settings,
    headers: Mapping[str, str],
    body: bytes,
    implied: CallbackEvent | None = None,
    *,
    max_age_seconds: int | None = None,
) -> CallbackReport:
    """The verified, validated result; :class:`CallbackRefused` otherwise.

    ``headers`` have lower-case names. ``implied`` is the event a stage route stands for.
    ``max_age_seconds`` lets a queued result be older than the signature tolerance (it waited
    in the queue); a result from the future is held to the tolerance either way.
    """
    webhook_id = _verified_id(settings, headers, body, max_age_seconds)
    try:
        # pydantic's own JSON parser bounds nesting depth, where json.loads would recurse
        payload = CallbackPayload.model_validate_json(
            body, context=asset_rules(settings.asset_url_hosts)
        )
    except (ValueError, ValidationError) as invalid:
        errors = invalid.errors(include_input=False) if isinstance(invalid, ValidationError) else []
        raise CallbackRefused(
            422, f"invalid callback body: {_summary(errors) or 'not JSON'}"
        ) from None
    stated = CallbackEvent(payload.event) if payload.event else None
    if implied is not None and stated is not None and stated is not implied:
        raise CallbackRefused(422, f"this route takes {implied} events, not {stated}")
    event = implied or stated
    if event is None:
        raise CallbackRefused(422, "the callback names no event")
    return _report(webhook_id, payload, event)


def _verified_id(
    settings: Settings, headers: Mapping[str, str], body: bytes, max_age_seconds: int | None
) -> str:
    if not settings.enable_n8n_callback_security:
        return headers.get("webhook-id") or f"unsigned-{time.time_ns()}"
    try:
        verified = verify(
            settings.callback_secrets,
            dict(headers),
            body,
            now=int(time.time()),
            tolerance_seconds=settings.callback_tolerance_seconds,
            max_age_seconds=max_age_seconds,
        )
    except SignatureError as refused:
        raise CallbackRefused(401, f"callback signature refused: {refused}") from None
    return verified.msg_id


def _summary(errors: Sequence[object]) -> str:
    parts = []
    for error in errors[:5]:
        if isinstance(error, dict):
            loc = ".".join(str(p) for p in error.get("loc", ()))
            parts.append(f"{loc}: {error.get('msg', '')}")
    return "; ".join(parts)


def _report(webhook_id: str, payload: CallbackPayload, event: CallbackEvent) -> CallbackReport:
    if event is CallbackEvent.SAMPLES_READY and not payload.samples:
        raise CallbackRefused(422, "a samples_ready callback needs at least one sample")
    if event is CallbackEvent.FINAL_READY and payload.asset is None:
        raise CallbackRefused(422, "a final_ready callback needs an asset")
    failure = None
    raw_error = None
    if event is CallbackEvent.FAILED:
        error = payload.error
        if error is None:
            raise CallbackRefused(422, "a failed callback needs an error")
        failure = Failure.reported(FailureCategory(error.category), error.code, error.message)
        raw_error = error.model_dump()
    return CallbackReport(
        webhook_id=webhook_id,
        event=event,
        job_id=payload.job_id,
        request_id=payload.request_id,
        samples=tuple(s.to_sample() for s in payload.samples),
        asset=payload.asset.to_sample() if payload.asset else None,
        failure=failure,
        raw_error=raw_error,
    )


class QueuedResultIntake:
    """One message of the results queue, read and applied as a callback would be.

    - refused (signature, timestamp, body) or one no retry can fix (no such job, an event that
      does not fit the job: a 404 or 409 over HTTP): dead-lettered, logged with the reason only;
    - applied, duplicate, late, or a webhook-id already received: acked (the change committed
      before, or there is none to make);
    - anything else (the database unreachable, the job's dispatch not recorded yet, a bug):
      retried later, the callback's own transaction having rolled back. Odoo unreachable is not
      a reason: a refund is journaled with the change and settled by recovery when Odoo does not
      take it at once, so the message is acked.
    """

    def __init__(
        self, settings: Settings, callbacks: CallbackService, metrics: Metrics | None = None
    ) -> None:
        self._settings = settings
        self._callbacks = callbacks
        self._metrics = metrics
        # a queued result may wait in the queue; its webhook-id is kept (for de-duplication) at
        # least this long, so a replay within it is still recognised
        self._max_age_seconds = int(settings.received_callback_retention_hours * 3600)

    async def __call__(self, headers: Mapping[str, str], body: bytes) -> Settlement:
        message_id = printable_webhook_id(headers.get("webhook-id", ""))
        try:
            report = read_callback(
                self._settings, headers, body, max_age_seconds=self._max_age_seconds
            )
        except CallbackRefused as refused:
            log.warning("result message %s refused: %s", message_id, refused.detail)
            if refused.signature_refused:
                self._count("rejected")
            return Settlement.dead_letter(refused.detail)
        try:
            outcome = await self._callbacks.handle(report)
        except DomainError as error:
            if error.status_code >= 500:
                log.warning("result message %s not applied yet: %s", message_id, error.detail)
                return Settlement.retry(error.detail)
            log.warning("result message %s refused: %s", message_id, error.detail)
            return Settlement.dead_letter(error.detail)
        except Exception as error:
            reason = _short(error)
            log.warning("result message %s not applied, to be retried: %s", message_id, reason)
            return Settlement.retry(reason)
        self._count(outcome.value)
        return Settlement.ack(outcome.value)

    def _count(self, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.callback_outcome(outcome)


def _short(error: BaseException) -> str:
    """The error's kind and first line: enough to tell an outage, never a statement's parameters
    (SQLAlchemy puts the SQL and its parameters on later lines)."""
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {first[:200]}" if first else type(error).__name__

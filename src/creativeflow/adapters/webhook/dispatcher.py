"""Dispatches generation jobs to n8n by POSTing them to its webhook, from asyncio.

The body is the same job message JSON the RabbitMQ publisher sends. Each try is signed the
Standard Webhooks way (``webhook-id`` = the job id, which the workflow checks; ``webhook-timestamp``
= now, signed anew on each try). A dispatch succeeds on any 2xx. Readiness (:meth:`check`) is a CORS
preflight n8n answers without running anything.

Retries (full-jitter backoff, ``max_attempts`` tries in all) happen only when n8n did not take the
job: no connection, a connection lost, 429 or 5xx. Another 4xx or a 3xx means the URL, the secret
or the message is wrong, and trying again will not help. A read or write timeout ends the dispatch
at once: the request is out and the client is waiting; if n8n runs the job after all, the provider
sees the job id as its ``Idempotency-Key`` and the callback is answered late. Every failure is a
:class:`WebhookDispatchFailed`, which is a ``DispatchUnavailable``, so the service refunds the
debit as for a failed RabbitMQ publish.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import httpx

from creativeflow.adapters.webhook.config import WebhookConfig
from creativeflow.adapters.webhook.errors import (
    WebhookDispatchFailed,
    WebhookRejected,
    WebhookServerError,
    WebhookTimedOut,
    WebhookUnreachable,
)
from creativeflow.domain.jobs import JobCancellation, JobMessage
from creativeflow.webhook_signature import signed_headers

log = logging.getLogger(__name__)

# nothing reached n8n: the connection never opened, or no pooled connection was free in time
_NOT_SENT: tuple[type[httpx.TransportError], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
)
# the request is (partly) out and its answer did not come in time
_SENT_AND_TIMED_OUT: tuple[type[httpx.TransportError], ...] = (
    httpx.ReadTimeout,
    httpx.WriteTimeout,
)
# the URL itself is unusable: trying again cannot help
_MISCONFIGURED: tuple[type[httpx.TransportError], ...] = (httpx.UnsupportedProtocol,)


def is_retryable_status(status: int) -> bool:
    return status == 429 or status >= 500


class WebhookJobDispatcher:
    """The ``JobPublisher`` port over n8n's webhook, with one shared httpx ``AsyncClient``."""

    def __init__(
        self,
        config: WebhookConfig,
        client: httpx.AsyncClient | None = None,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._config = config
        self._client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(config.timeout),
            limits=httpx.Limits(
                max_connections=config.max_connections,
                max_keepalive_connections=config.max_connections,
            ),
            follow_redirects=False,
        )
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()

    def __repr__(self) -> str:
        return f"WebhookJobDispatcher({self._config!r})"

    # -- the port ----------------------------------------------------------------------------------

    async def publish(self, job: JobMessage) -> None:
        """POST the job until n8n answers 2xx; raise a :class:`WebhookDispatchFailed` otherwise."""
        await self._deliver(job)

    async def cancel(self, cancellation: JobCancellation) -> None:
        """POST the cancellation to the same webhook (``x-event-type`` tells it apart), with the
        same signature and retries as a job."""
        await self._deliver(cancellation)

    async def _deliver(self, job: JobMessage | JobCancellation) -> None:
        if self._client.is_closed:  # shutting down: say so the way every failure says it
            raise WebhookUnreachable("the dispatcher is closed", job_id=job.job_id, attempts=0)
        body = job.encode()
        maybe_taken = False
        for attempt in range(1, self._config.max_attempts + 1):
            response, failure = await self._try_once(job, body, attempt)
            if failure is None:
                return
            maybe_taken = maybe_taken or failure.outcome_unknown
            failure.outcome_unknown = maybe_taken
            if not self._worth_retrying(failure) or attempt == self._config.max_attempts:
                log.warning("job %s not dispatched to n8n: %s", job.job_id, failure)
                raise failure
            delay = self._backoff(attempt, response)
            log.info(
                "job %s: n8n try %d failed (%s); trying again in %.2fs",
                job.job_id,
                attempt,
                failure.reason,
                delay,
            )
            await self._sleep(delay)
        raise AssertionError("unreachable: the last try returns or raises")  # pragma: no cover

    async def check(self) -> bool:
        """Readiness: n8n says an active workflow takes ``POST`` on the webhook URL.

        The probe is the CORS preflight a browser sends before a ``POST``: ``OPTIONS`` with an
        ``Origin`` and ``Access-Control-Request-Method: POST``. n8n answers it from the webhooks
        its active workflows registered, without starting an execution: ``204`` listing ``POST``
        in ``Access-Control-Allow-Methods`` when one registered ``POST`` on the path, ``404`` when
        none did. A missing or inactive workflow, n8n down or a wrong URL all read as not ready
        before any submit is charged and refunded; the probe itself charges, generates and
        records nothing (a ``GET`` webhook would add an execution to n8n's list at every probe).
        """
        if self._client.is_closed:
            return False
        host = urlsplit(self._config.url).hostname or "localhost"
        origin = f"{urlsplit(self._config.url).scheme}://{f'[{host}]' if ':' in host else host}"
        try:
            response = await self._client.request(
                "OPTIONS",
                self._config.url,
                headers={
                    "user-agent": self._config.user_agent,
                    "origin": origin,
                    "access-control-request-method": "POST",
                },
                timeout=self._config.check_timeout,
            )
        except httpx.HTTPError as error:
            log.info("n8n webhook not reachable: %r", error)
            return False
        allowed = {
            method.strip().upper()
            for method in response.headers.get("access-control-allow-methods", "").split(",")
        }
        if not response.is_success or "POST" not in allowed:
            log.info(
                "n8n webhook not ready: the preflight for POST answered %s (allowed: %s)",
                response.status_code,
                ", ".join(sorted(allowed - {""})) or "none",
            )
            return False
        return True

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- one try -----------------------------------------------------------------------------------

    async def _try_once(
        self, job: JobMessage | JobCancellation, body: bytes, attempt: int
    ) -> tuple[httpx.Response | None, WebhookDispatchFailed | None]:
        headers = self._headers(job, body)
        try:
            response = await self._client.post(self._config.url, content=body, headers=headers)
        except httpx.TransportError as error:
            return None, _transport_failure(error, job.job_id, attempt)
        if response.is_success:
            log.debug(
                "%s for job %s dispatched to n8n (HTTP %d, try %d)",
                job.event,
                job.job_id,
                response.status_code,
                attempt,
                extra={"request_id": job.request_id, "job_id": job.job_id},
            )
            return response, None
        return response, _status_failure(response.status_code, job.job_id, attempt)

    def _headers(self, job: JobMessage | JobCancellation, body: bytes) -> dict[str, str]:
        headers = signed_headers(self._config.secret, job.message_id, int(self._clock()), body)
        headers["user-agent"] = self._config.user_agent
        headers["x-request-id"] = job.correlation_id
        headers["x-event-type"] = job.event
        return headers

    @staticmethod
    def _worth_retrying(failure: WebhookDispatchFailed) -> bool:
        return isinstance(failure, WebhookUnreachable | WebhookServerError)

    def _backoff(self, attempt: int, response: httpx.Response | None) -> float:
        """Full jitter up to ``base * 2**(attempt-1)``, or the server's ``Retry-After``; capped."""
        cap = self._config.backoff_cap
        retry_after = _retry_after_seconds(response)
        if retry_after is not None:
            return min(retry_after, cap)
        return self._rng.uniform(0, min(cap, self._config.backoff_base * 2 ** (attempt - 1)))


def _transport_failure(
    error: httpx.TransportError, job_id: str, attempt: int
) -> WebhookDispatchFailed:
    reason = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    if isinstance(error, _SENT_AND_TIMED_OUT):
        return WebhookTimedOut(reason, job_id=job_id, attempts=attempt)
    if isinstance(error, _MISCONFIGURED):
        return WebhookRejected(reason, job_id=job_id, attempts=attempt)
    sent = not isinstance(error, _NOT_SENT)
    return WebhookUnreachable(reason, job_id=job_id, attempts=attempt, outcome_unknown=sent)


def _status_failure(status: int, job_id: str, attempt: int) -> WebhookDispatchFailed:
    reason = f"n8n answered HTTP {status}"
    if is_retryable_status(status):
        # a 5xx may come from a proxy after n8n took the job; a 429 says it did not
        return WebhookServerError(
            reason,
            job_id=job_id,
            attempts=attempt,
            http_status=status,
            outcome_unknown=status >= 500,
        )
    return WebhookRejected(reason, job_id=job_id, attempts=attempt, http_status=status)


def _retry_after_seconds(response: httpx.Response | None) -> float | None:
    """A ``Retry-After`` given in seconds (an HTTP date is ignored: backoff applies)."""
    if response is None:
        return None
    raw = response.headers.get("retry-after")
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None

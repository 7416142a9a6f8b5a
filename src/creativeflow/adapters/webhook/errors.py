"""Errors of the n8n webhook dispatcher. Each is a :class:`DispatchUnavailable` (503 at the API).

    DispatchUnavailable                 (creativeflow.domain.errors)
    └── WebhookDispatchFailed           n8n did not accept the job with a 2xx
        ├── WebhookUnreachable          no HTTP answer on any try: refused, reset, DNS, connect
        │                               timeout, connection lost (retried up to max_attempts)
        ├── WebhookTimedOut             the request was sent and no answer came within the timeout
        │                               (never retried: the client is waiting)
        ├── WebhookRejected             a 3xx or a 4xx other than 429: the URL, the secret or the
        │                               message is wrong (never retried)
        └── WebhookServerError          429 or 5xx on every one of max_attempts tries

``outcome_unknown`` is true when n8n may have taken the job although the dispatch failed (a try was
sent and lost its answer, timed out, or got a 5xx). The service refunds the debit all the same; a
job n8n runs anyway calls the provider with the job id as its ``Idempotency-Key`` (the
``webhook-id`` is the job id too), and its callback is acknowledged as late with no change. The
``detail`` of each error is safe to show a client; the cause is in ``reason`` for logs;
``http_status`` is n8n's last HTTP status, if any (``status_code`` stays the API's 503).
"""

from __future__ import annotations

from creativeflow.domain.errors import DispatchUnavailable

_CLIENT_DETAIL = "The generation job could not be dispatched; please try again later."


class WebhookDispatchFailed(DispatchUnavailable):
    outcome_unknown = False

    def __init__(
        self,
        reason: str,
        *,
        job_id: str | None = None,
        attempts: int = 1,
        http_status: int | None = None,
        outcome_unknown: bool | None = None,
    ) -> None:
        super().__init__(_CLIENT_DETAIL)
        self.reason = reason
        self.job_id = job_id
        self.attempts = attempts
        self.http_status = http_status
        if outcome_unknown is not None:
            self.outcome_unknown = outcome_unknown

    def __str__(self) -> str:
        status = f", HTTP {self.http_status}" if self.http_status is not None else ""
        return (
            f"{type(self).__name__}: {self.reason} "
            f"(job {self.job_id}, {self.attempts} attempt(s){status})"
        )


class WebhookUnreachable(WebhookDispatchFailed):
    pass


class WebhookTimedOut(WebhookDispatchFailed):
    outcome_unknown = True


class WebhookRejected(WebhookDispatchFailed):
    pass


class WebhookServerError(WebhookDispatchFailed):
    pass

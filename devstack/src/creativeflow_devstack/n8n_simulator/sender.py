"""Posts signed callbacks the way n8n does: Standard Webhooks headers, timeouts, bounded retries."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

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

"""The Notification Service over HTTP: sent after the commit, retried a bounded number of times
with timeouts, and never allowed to fail the flow that triggered it."""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass

import httpx

from creativeflow.domain.notifications import Notification

log = logging.getLogger(__name__)

NOTIFICATIONS_PATH = "/api/v1/notifications"


@dataclass(frozen=True, slots=True)
class NotificationConfig:
    base_url: str
    timeout: float = 3.0
    max_attempts: int = 3
    backoff_base: float = 0.2


class HttpNotifier:
    """Fire-and-forget sends on the running loop; :meth:`drain` waits for those in flight."""

    def __init__(self, config: NotificationConfig, client: httpx.AsyncClient | None = None) -> None:
        self._config = config
        self._client = client or httpx.AsyncClient(
            base_url=config.base_url.rstrip("/"),
            timeout=httpx.Timeout(config.timeout),
            # keep every connection it may open: with fewer kept alive, a burst of callbacks
            # opens (and the pool then closes) a new connection per notification
            limits=httpx.Limits(max_connections=20, max_keepalive_connections=20),
        )
        self._in_flight: set[asyncio.Task[bool]] = set()
        self.sent = 0
        self.failed = 0

    def send(self, notification: Notification) -> None:
        task = asyncio.get_running_loop().create_task(self.deliver(notification))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def deliver(self, notification: Notification) -> bool:
        body = notification.to_json_dict()
        headers = {"X-Request-ID": notification.correlation_id}
        for attempt in range(1, self._config.max_attempts + 1):
            try:
                response = await self._client.post(NOTIFICATIONS_PATH, json=body, headers=headers)
            except httpx.HTTPError as error:
                reason = type(error).__name__
            else:
                if response.status_code < 500 and response.status_code != 429:
                    if response.is_success:
                        self.sent += 1
                        return True
                    reason = f"HTTP {response.status_code}"
                    break  # the service refused this notification; retrying will not help
                reason = f"HTTP {response.status_code}"
            if attempt < self._config.max_attempts:
                await asyncio.sleep(random.uniform(0, self._config.backoff_base * 2**attempt))
        self.failed += 1
        log.warning(
            "notification %s for request %s not delivered: %s",
            notification.type,
            notification.request_id,
            reason,
            extra={"request_id": notification.request_id},
        )
        return False

    async def drain(self) -> None:
        if self._in_flight:
            await asyncio.gather(*list(self._in_flight), return_exceptions=True)

    async def aclose(self) -> None:
        """Send what is in flight, then close the connection pool."""
        await self.drain()
        await self._client.aclose()

    close = aclose

"""One signed POST of one event to a client's webhook.

The body is the event's JSON; ``webhook-id`` (``evt_<event id>``), ``webhook-timestamp`` and
``webhook-signature`` (``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`` with
``CLIENT_WEBHOOK_SECRET``) are the Standard Webhooks headers, as on n8n's callbacks. Any 2xx is
accepted; anything else, a timeout or a connection error is ``ClientWebhookUndelivered``.
Redirects are not followed. Unless private hosts are allowed (development and tests only), the
host must resolve to public addresses only, checked before each post, so a webhook cannot be
aimed at the service's own network.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from creativeflow.domain.client_webhooks import ClientWebhookUndelivered
from creativeflow.webhook_signature import signed_headers


@dataclass(frozen=True, slots=True)
class ClientWebhookSenderConfig:
    secret: str = field(repr=False)
    timeout: float = 5.0
    allow_private_hosts: bool = False


class HttpClientWebhookSender:
    def __init__(self, config: ClientWebhookSenderConfig) -> None:
        self._config = config
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(config.timeout),
            follow_redirects=False,
            headers={"user-agent": "creativeflow-orchestrator webhooks"},
        )

    async def send(self, url: str, message_id: str, body: bytes) -> None:
        if not self._config.allow_private_hosts:
            await self._require_public(url)
        headers = signed_headers(self._config.secret, message_id, int(time.time()), body)
        try:
            answer = await self._client.post(url, content=body, headers=headers)
        except httpx.HTTPError as error:
            raise ClientWebhookUndelivered(f"no answer ({type(error).__name__})") from None
        if not 200 <= answer.status_code < 300:
            raise ClientWebhookUndelivered(f"answered HTTP {answer.status_code}")

    async def _require_public(self, url: str) -> None:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            found = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except OSError:
            raise ClientWebhookUndelivered("the host does not resolve") from None
        for *_, address in found:
            if not ipaddress.ip_address(address[0]).is_global:
                raise ClientWebhookUndelivered("the host resolves to a non-public address")

    async def aclose(self) -> None:
        await self._client.aclose()

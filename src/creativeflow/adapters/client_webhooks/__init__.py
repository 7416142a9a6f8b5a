"""Posting events to clients' webhooks over HTTP (httpx), signed the Standard Webhooks way."""

from .sender import ClientWebhookSenderConfig, HttpClientWebhookSender

__all__ = ["ClientWebhookSenderConfig", "HttpClientWebhookSender"]

"""n8n webhook adapter: dispatches jobs by a signed HTTP POST to n8n's webhook (the other
``JobPublisher``, chosen by ``DISPATCH_MODE=webhook``)."""

from creativeflow.adapters.webhook.config import WebhookConfig
from creativeflow.adapters.webhook.dispatcher import WebhookJobDispatcher
from creativeflow.adapters.webhook.errors import (
    WebhookDispatchFailed,
    WebhookRejected,
    WebhookServerError,
    WebhookTimedOut,
    WebhookUnreachable,
)

__all__ = [
    "WebhookConfig",
    "WebhookDispatchFailed",
    "WebhookJobDispatcher",
    "WebhookRejected",
    "WebhookServerError",
    "WebhookTimedOut",
    "WebhookUnreachable",
]

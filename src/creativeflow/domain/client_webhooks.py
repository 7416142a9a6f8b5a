"""A client's webhook for one request: every event of the request (the same JSON as its live
stream's) posted to the URL the client gave at the submit, in order, signed the Standard
Webhooks way, until delivery gives up.

Delivery is at least once and in id order: an event is posted only after every earlier one was
accepted (a 2xx), and each carries ``webhook-id`` = ``evt_<event id>`` so a receiver drops a
repeat. A failed post is tried again after a delay that doubles from ``retry_base`` up to
``retry_cap``; after ``max_attempts`` failures in a row the webhook is ``failed`` and no more is
posted (the request's stream and view still tell everything).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta


class ClientWebhookStatus(enum.StrEnum):
    ACTIVE = "active"
    FAILED = "failed"  # gave up after max_attempts failures in a row


@dataclass(frozen=True, slots=True)
class ClientWebhook:
    request_id: str
    user_id: str
    url: str
    delivered_through: int  # the id of the last event the receiver accepted (0: none yet)
    attempts: int  # failures in a row


class ClientWebhookUndelivered(Exception):
    """A post the receiver did not accept (no answer, not a 2xx, a refused address). The text
    names the reason only: never a secret, never the receiver's body."""


@dataclass(frozen=True, slots=True)
class DeliveryRules:
    max_attempts: int = 10
    retry_base: timedelta = timedelta(seconds=5)
    retry_cap: timedelta = timedelta(minutes=10)

    def after_failure(self, attempts: int, now: datetime) -> tuple[ClientWebhookStatus, datetime]:
        """What ``attempts`` failures in a row lead to: the status, and when to try again."""
        if attempts >= self.max_attempts:
            return ClientWebhookStatus.FAILED, now
        delay = min(self.retry_base * 2 ** (attempts - 1), self.retry_cap)
        return ClientWebhookStatus.ACTIVE, now + delay


def message_id(event_id: int) -> str:
    """The ``webhook-id`` of an event's post: the same for every try, so repeats are seen."""
    return f"evt_{event_id}"

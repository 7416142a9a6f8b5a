"""What the user is told, and when."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class NotificationType(enum.StrEnum):
    SAMPLES_READY = "generation.samples_ready"
    COMPLETED = "generation.completed"
    FAILED = "generation.failed"
    CONTENT_REJECTED = "generation.content_rejected"
    CREDITS_REFUNDED = "credits.refunded"


@dataclass(frozen=True, slots=True)
class Notification:
    user_id: str
    type: NotificationType
    request_id: str
    title: str
    message: str
    correlation_id: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "type": self.type.value,
            "request_id": self.request_id,
            "title": self.title,
            "message": self.message,
            "correlation_id": self.correlation_id,
            "data": self.data,
        }

"""The job message n8n consumes, and the callback vocabulary it answers with.

The message is versioned JSON; ``src/creativeflow/schemas/generation-job.v1.json`` is its JSON
Schema (also published in ``docs/``).
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

JOB_SCHEMA = "creativeflow.generation-job.v1"
JOB_EVENT = "AIGenerationJobRequested"


class Stage(enum.StrEnum):
    SAMPLES = "samples"
    FINAL = "final"


class CallbackEvent(enum.StrEnum):
    SAMPLES_READY = "samples_ready"
    FINAL_READY = "final_ready"
    FAILED = "failed"


class FailureCategory(enum.StrEnum):
    """Who is to blame for a failed job: the platform refunds, a content rejection does not."""

    PLATFORM = "platform"
    CONTENT_POLICY = "content_policy"
    # not a failure of the job: Odoo refused to pay for it (balance, tier, cap), nothing charged
    CREDITS_REFUSED = "credits_refused"


@dataclass(frozen=True, slots=True)
class CallbackUrls:
    generic: str
    samples: str
    final: str
    error: str


@dataclass(frozen=True, slots=True)
class JobMessage:
    job_id: str
    request_id: str
    user_id: str
    stage: Stage
    attempt: int
    action: str
    model: str
    correlation_id: str
    created_at: datetime
    deadline_at: datetime
    parameters: dict[str, Any]
    callbacks: CallbackUrls
    extra: dict[str, Any] = field(default_factory=dict)

    def encode(self) -> bytes:
        """The message as compact UTF-8 JSON: the bytes published to RabbitMQ, or signed and
        posted to n8n's webhook."""
        return json.dumps(self.to_json_dict(), separators=(",", ":"), ensure_ascii=False).encode()

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "schema": JOB_SCHEMA,
            "event": JOB_EVENT,
            "job_id": self.job_id,
            "request_id": self.request_id,
            "user_id": self.user_id,
            "stage": self.stage.value,
            "attempt": self.attempt,
            "action": self.action,
            "model": self.model,
            "correlation_id": self.correlation_id,
            "created_at": self.created_at.isoformat(),
            "deadline_at": self.deadline_at.isoformat(),
            "parameters": self.parameters,
            "callback": {
                "url": self.callbacks.generic,
                "samples_url": self.callbacks.samples,
                "final_url": self.callbacks.final,
                "error_url": self.callbacks.error,
            },
            **self.extra,
        }

"""The job message n8n consumes, and the callback vocabulary it answers with.

The messages are versioned JSON; ``src/creativeflow/schemas/generation-job.v2.json`` and
``generation-cancel.v1.json`` are their JSON Schemas (also published in ``docs/``). The service
publishes v2 (v1 and the creative brief); consumers accept v1 as well while they move on.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

JOB_SCHEMA = "creativeflow.generation-job.v2"
# consumers accept the previous version as well while producers move on
JOB_SCHEMAS_ACCEPTED = ("creativeflow.generation-job.v1", JOB_SCHEMA)
JOB_EVENT = "AIGenerationJobRequested"
CANCEL_SCHEMA = "creativeflow.generation-cancel.v1"
CANCEL_EVENT = "AIGenerationJobCancelled"


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
    event: ClassVar[str] = JOB_EVENT

    @property
    def message_id(self) -> str:
        """Consumers de-duplicate jobs on it."""
        return self.job_id

    def encode(self) -> bytes:
        """The message as compact UTF-8 JSON: the bytes published to RabbitMQ, or signed and
        posted to n8n's webhook."""
        return _compact_json(self.to_json_dict())

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "schema": JOB_SCHEMA,
            "event": self.event,
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


@dataclass(frozen=True, slots=True)
class JobCancellation:
    """Tells n8n that a job's request was cancelled: the work is no longer wanted, and a result
    sent anyway is acknowledged as late and changes nothing."""

    job_id: str
    request_id: str
    stage: Stage
    action: str
    correlation_id: str
    cancelled_at: datetime
    reason: str = "cancelled_by_user"
    event: ClassVar[str] = CANCEL_EVENT

    @property
    def message_id(self) -> str:
        """Unique per job, and never a job's own message id (consumers de-duplicate jobs on it)."""
        return f"cancel-{self.job_id}"

    def encode(self) -> bytes:
        return _compact_json(self.to_json_dict())

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "schema": CANCEL_SCHEMA,
            "event": self.event,
            "job_id": self.job_id,
            "request_id": self.request_id,
            "stage": self.stage.value,
            "action": self.action,
            "correlation_id": self.correlation_id,
            "cancelled_at": self.cancelled_at.isoformat(),
            "reason": self.reason,
        }


def _compact_json(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()

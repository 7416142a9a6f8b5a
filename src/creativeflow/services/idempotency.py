"""Idempotency keys: a client's retry of a paid step returns the first answer and never charges
again.

A key is scoped to the user and the step (``submit``, ``selection:<id>``, ``regeneration:<id>``)
and bound to a fingerprint of the body. It is claimed inside the step's first transaction and its
answer stored inside the step's last one, so keys cost no extra transaction. The same key with
another body is refused (422); a retry while the first call is still running gets 409. An answer
that asks the client to retry later (503) releases the key; so does recovery when it settles a
request whose call never answered.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from creativeflow.domain.errors import Conflict, DomainError
from creativeflow.domain.model import GenerationRequest

from .ports import Tracking


class IdempotencyMismatch(DomainError):
    status_code = 422
    problem_type = "/problems/idempotency-key-reused"
    title = "Idempotency key reused"


class IdempotencyInFlight(Conflict):
    problem_type = "/problems/idempotency-key-in-flight"
    title = "Request with this idempotency key in progress"


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """The first call's answer, to be returned as it was."""

    status: int
    body: dict[str, Any]


class ReplayedAnswer(Exception):
    """Raised inside the first transaction when the key already has an answer."""

    def __init__(self, answer: StoredAnswer) -> None:
        super().__init__("replayed idempotent answer")
        self.answer = answer


def fingerprint(scope: str, body: Any) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{scope}\n{canonical}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class IdempotencyKey:
    """What the API knows about a keyed call, and how to render its answers for storage."""

    user_id: str
    scope: str
    key: str
    fingerprint: str
    ttl: timedelta
    render: Callable[[GenerationRequest], dict[str, Any]]
    render_error: Callable[[DomainError], dict[str, Any]]

    def claim(self, repo: Tracking, now: datetime, request_id: str | None) -> None:
        """Claim the key, or raise: the stored answer, a mismatch, or a call still running."""
        earlier = repo.claim_idempotency_key(
            user_id=self.user_id,
            scope=self.scope,
            key=self.key,
            fingerprint=self.fingerprint,
            now=now,
            expires_at=now + self.ttl,
            request_id=request_id,
        )
        if earlier is None:
            return
        if earlier.fingerprint != self.fingerprint:
            raise IdempotencyMismatch(
                "this Idempotency-Key was used with another request body", key=self.key
            )
        if earlier.status == "done" and earlier.response_status and earlier.response_body:
            raise ReplayedAnswer(StoredAnswer(earlier.response_status, earlier.response_body))
        raise IdempotencyInFlight(
            "a request with this Idempotency-Key is still being processed; retry shortly",
            key=self.key,
        )

    def answer(self, repo: Tracking, request: GenerationRequest, status: int) -> None:
        repo.complete_idempotency_key(
            user_id=self.user_id,
            scope=self.scope,
            key=self.key,
            status=status,
            body=self.render(request),
        )

    def answer_error(self, repo: Tracking, error: DomainError) -> None:
        if error.status_code >= 500:
            repo.release_idempotency_key(user_id=self.user_id, scope=self.scope, key=self.key)
            return
        repo.complete_idempotency_key(
            user_id=self.user_id,
            scope=self.scope,
            key=self.key,
            status=error.status_code,
            body=self.render_error(error),
        )

"""Idempotency keys: a client's retry of a paid step returns the first answer and never charges
again.

A key is scoped to the user and the step (``submit``, ``selection:<id>``, ``regeneration:<id>``)
and bound to a fingerprint of the body. It is claimed inside the step's first transaction and its
answer stored inside the step's last one, so keys cost no extra transaction. The same key with
another body is refused (422); a retry while the first call is still running gets 409. An answer
that asks the client to retry later (503) releases the key; so does recovery when it settles a
request whose call never answered.

The use cases never name an HTTP status: the API gives each key its renderers, which say what an
accepted step and an error answer (status and body), and which errors leave the key free for a
retry. A claim that finds a stored answer returns it; the use case then returns it in place of a
fresh result, before anything is written.
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
    # the answer to an accepted step, as it is to be stored
    render: Callable[[GenerationRequest], StoredAnswer]
    # the answer to an error, or None for one the client should retry (the key is released)
    render_error: Callable[[DomainError], StoredAnswer | None]

    def claim(self, repo: Tracking, now: datetime, request_id: str | None) -> StoredAnswer | None:
        """Claim the key: None when it is new, the stored answer of a finished first call;
        raises on a mismatch or a first call still running."""
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
            return None
        if earlier.fingerprint != self.fingerprint:
            raise IdempotencyMismatch(
                "this Idempotency-Key was used with another request body", key=self.key
            )
        if earlier.status == "done" and earlier.response_status and earlier.response_body:
            return StoredAnswer(earlier.response_status, earlier.response_body)
        raise IdempotencyInFlight(
            "a request with this Idempotency-Key is still being processed; retry shortly",
            key=self.key,
        )

    def answer(self, repo: Tracking, request: GenerationRequest) -> None:
        self._store(repo, self.render(request))

    def answer_error(self, repo: Tracking, error: DomainError) -> None:
        answer = self.render_error(error)
        if answer is None:
            repo.release_idempotency_key(user_id=self.user_id, scope=self.scope, key=self.key)
            return
        self._store(repo, answer)

    def _store(self, repo: Tracking, answer: StoredAnswer) -> None:
        repo.complete_idempotency_key(
            user_id=self.user_id,
            scope=self.scope,
            key=self.key,
            status=answer.status,
            body=answer.body,
        )

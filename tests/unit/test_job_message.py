"""The job message's bytes: what RabbitMQ carries and what the webhook dispatch signs and posts;
and the cancellation of a job."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import jsonschema

from creativeflow.domain.jobs import CallbackUrls, JobCancellation, JobMessage, Stage

AT = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def a_job(prompt: str) -> JobMessage:
    return JobMessage(
        job_id="j-1",
        request_id="r-1",
        user_id="u-1",
        stage=Stage.SAMPLES,
        attempt=1,
        action="samples",
        model="creativeflow-standard-v1",
        correlation_id="c-1",
        created_at=AT,
        deadline_at=AT,
        parameters={"prompt": prompt, "samples": 2},
        callbacks=CallbackUrls("https://o/cb", "https://o/s", "https://o/f", "https://o/e"),
    )


def test_the_bytes_are_compact_utf8_json_of_the_published_document() -> None:
    job = a_job("un phare à l'aube — 灯台")
    body = job.encode()

    assert json.loads(body) == job.to_json_dict()
    assert b", " not in body and b": " not in body  # compact: the bytes that are signed
    assert "à l'aube — 灯台".encode() in body  # UTF-8 as is, no \\u escapes
    assert body == a_job("un phare à l'aube — 灯台").encode()  # the same job, the same bytes


ROOT = Path(__file__).parents[2]
CANCEL_SCHEMA = json.loads(
    (ROOT / "src/creativeflow/schemas/generation-cancel.v1.json").read_text()
)


def a_cancellation() -> JobCancellation:
    return JobCancellation(
        job_id="6f1c5a9e-9d3b-4c1e-8f0a-2b7d4e6c8a10",
        request_id="0b9e2c4d-5f6a-4b7c-8d9e-0f1a2b3c4d5e",
        stage=Stage.FINAL,
        action="final-2",
        correlation_id="c-1",
        cancelled_at=AT,
    )


def test_a_cancellation_is_the_documented_message_and_never_mistaken_for_its_job() -> None:
    cancellation = a_cancellation()
    body = json.loads(cancellation.encode())

    validator = jsonschema.Draft202012Validator(
        CANCEL_SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    validator.validate(body)
    assert (body["event"], body["stage"], body["action"]) == (
        "AIGenerationJobCancelled",
        "final",
        "final-2",
    )
    # consumers de-duplicate jobs on the message id: a cancellation must not take its job's
    assert cancellation.message_id == f"cancel-{cancellation.job_id}"
    assert not validator.is_valid({**body, "reason": "because"})


def test_the_published_cancel_schema_is_the_packaged_one() -> None:
    assert json.loads((ROOT / "docs/cancel-message.schema.json").read_text()) == CANCEL_SCHEMA

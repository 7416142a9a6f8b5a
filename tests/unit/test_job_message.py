"""The job message's bytes: what RabbitMQ carries and what the webhook dispatch signs and posts."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from creativeflow.domain.jobs import CallbackUrls, JobMessage, Stage

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

"""What n8n reports of a failure reaches the user only as a short, plain sentence: the first line,
no stack frame, no server path, no control character, at most 300 characters."""

from __future__ import annotations

import pytest

from creativeflow.domain.jobs import FailureCategory
from creativeflow.domain.model import MAX_REPORTED_MESSAGE, Failure, user_safe_message

AXIOS = (
    "AxiosError: Request failed with status code 503\n"
    "    at settle (/usr/local/lib/node_modules/n8n/node_modules/axios/lib/core/settle.js:19:12)\n"
    "    at IncomingMessage.handleStreamEnd (/usr/local/lib/node_modules/axios/lib/http.js:599:11)"
)


@pytest.mark.parametrize(
    ("reported", "shown"),
    [
        (AXIOS, "AxiosError: Request failed with status code 503"),
        ("boom at settle (/app/node_modules/x/settle.js:19:12)", "boom"),
        ("the provider\x00 is\x1b[31m down", "the provider is[31m down"),
        ("\n\n  second line first  \nthird", "second line first"),
        ("see /var/log/n8n/worker.log", "see …"),
        ("err at f (node:internal/process/task_queues:95:5)", "err"),
        ("C:\\n8n\\app\\worker.js broke", "… broke"),
        # words that only look like a frame or a path stay
        ("the provider is unavailable at the moment", "the provider is unavailable at the moment"),
        ("try again at 10:30", "try again at 10:30"),
        (
            "see https://status.example.com/incidents/42",
            "see https://status.example.com/incidents/42",
        ),
        ("sizes 512/768/1024 only", "sizes 512/768/1024 only"),
        (
            "The image provider is unavailable right now.",
            "The image provider is unavailable right now.",
        ),
    ],
)
def test_a_reported_message_is_cut_to_what_a_user_may_read(reported: str, shown: str) -> None:
    assert user_safe_message(reported, "fallback") == shown


def test_a_long_message_is_bounded_and_an_empty_one_falls_back() -> None:
    long = user_safe_message("word " * 500, "fallback")
    assert len(long) == MAX_REPORTED_MESSAGE and long.endswith("…")
    assert user_safe_message("   \n  ", "fallback") == "fallback"


def test_a_failure_from_n8n_keeps_its_category_and_code() -> None:
    failure = Failure.reported(FailureCategory.PLATFORM, "provider_unavailable", AXIOS)
    assert failure == Failure(
        FailureCategory.PLATFORM,
        "provider_unavailable",
        "AxiosError: Request failed with status code 503",
    )
    empty = Failure.reported(FailureCategory.CONTENT_POLICY, "policy", "")
    assert empty.message == "The request was declined under the content policy."


def test_every_failure_is_cut_whoever_builds_it() -> None:
    # not only n8n's reports: a refusal, a timeout or a row read back can never carry a stack
    failure = Failure(FailureCategory.PLATFORM, "timeout", AXIOS)
    assert failure.message == "AxiosError: Request failed with status code 503"
    assert (
        Failure(FailureCategory.PLATFORM, "x", "").message == "The generation failed on our side."
    )
    assert Failure(failure.category, failure.code, failure.message) == failure  # stable on re-read

"""Signed n8n callbacks with generated bodies. The OpenAPI fuzzer only reaches the callbacks'
signature check (401); these bodies carry a valid signature, so they reach the parser, the
schema, the asset-URL rule and the use case. Whatever the body: never a 5xx, always one of the
documented answers, and a request is refunded at most once."""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from creativeflow.webhook_signature import signed_headers
from tests.e2e.conftest import CALLBACK_SECRET, Stack, wait_for
from tests.e2e.test_generation_flow import submit
from tests.fuzz.conftest import HOSTILE_CHARACTERS, hostile_text

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "30")) * 2
DOCUMENTED = {200, 404, 409, 422, 503}

json_leaves = st.none() | st.booleans() | st.integers() | st.floats() | hostile_text(40)
json_values = st.recursive(
    json_leaves,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(hostile_text(12), inner, max_size=4)
    ),
    max_leaves=25,
)


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """Pick a strategy in proportion to its weight (``one_of`` weighs its branches alike)."""
    pool = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.sampled_from(pool).flatmap(lambda strategy: strategy)


urls = weighted(
    (4, st.just("https://assets.creativeflow.local/x.png")),
    (
        2,
        st.sampled_from(
            [
                "https://assets.creativeflow.local@evil.example/x.png",
                "https://assets.creativeflow.local\\@evil.example/x.png",
                "javascript:alert(1)",
                "http://[::1",
                "https://a.example:99999/x",
                "",
            ]
        ),
    ),
    (1, hostile_text(60)),
)


def assets() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"id": weighted((4, st.just("s1")), (1, hostile_text(20))), "url": urls},
        optional={
            "width": weighted((4, st.integers(-5, 70_000)), (1, json_leaves)),
            "height": st.integers(-5, 70_000),
            "format": hostile_text(20),
        },
    )


def ids(real: str) -> st.SearchStrategy[Any]:
    return weighted(
        (2, st.sampled_from([real, str(uuid.uuid4())])),
        (2, st.text(alphabet="0123456789abcdef-", min_size=1, max_size=80)),
        # around a UUID's 36 characters, where the schema's and the table's bounds meet
        (2, st.text(alphabet="0123456789abcdef-", min_size=30, max_size=70)),
        (1, hostile_text(80)),
        (1, st.sampled_from([real[:-1] + c for c in HOSTILE_CHARACTERS])),
        (1, json_leaves),
    )


@pytest.fixture(scope="module")
def open_job(stack: Stack) -> dict[str, Any]:
    """A real job waiting for n8n, so some bodies reach the use case and move it."""
    user = stack.new_user()
    created = submit(stack, user, prompt="[hold] fuzzed callbacks", samples=1)
    return wait_for(  # type: ignore[no-any-return]
        lambda: next((j for j in stack.jobs_published() if j["request_id"] == created["id"]), None)
    )


def callback_bodies(job: dict[str, Any]) -> st.SearchStrategy[bytes]:
    """Mostly complete callbacks of each event (so they reach the use case and the database),
    then the same with a wrong event, then any JSON, then any bytes."""
    errors = st.fixed_dictionaries(
        {},
        optional={
            "category": weighted(
                (4, st.sampled_from(["platform", "content_policy"])), (1, json_leaves)
            ),
            "code": weighted((4, st.just("provider_timeout")), (1, hostile_text(80))),
            "message": hostile_text(100),
        },
    )

    def event(name: str, **fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
        return st.fixed_dictionaries(
            {
                "event": st.just(name),
                "job_id": ids(job["job_id"]),
                "request_id": ids(job["request_id"]),
                **fields,
            }
        )

    shaped = st.one_of(
        event("samples_ready", samples=st.lists(assets(), min_size=1, max_size=3)),
        event("final_ready", asset=assets()),
        event("failed", error=errors),
    )
    odd = shaped.map(lambda body: {**body, "event": "nope"}) | shaped.map(
        lambda body: {**body, "samples": {"not": "a list"}, "asset": [], "error": 7}
    )
    as_json = weighted((6, shaped), (1, odd), (1, json_values)).map(
        lambda v: json.dumps(v).encode()
    )
    return weighted((8, as_json), (1, st.binary(max_size=120)))


@pytest.mark.parametrize("path", ["", "/samples", "/final", "/error"])
def test_signed_callbacks_with_any_body_answer_as_documented(
    stack: Stack, open_job: dict[str, Any], path: str
) -> None:
    url = f"{stack.api_url}/api/v1/callbacks/n8n{path}"

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=not os.environ.get("FUZZ_RANDOM"),
        suppress_health_check=list(HealthCheck),
    )
    @given(body=callback_bodies(open_job))
    def answers_as_documented(body: bytes) -> None:
        headers = signed_headers(CALLBACK_SECRET, f"msg_{uuid.uuid4().hex}", int(time.time()), body)
        response = httpx.post(url, content=body, headers=headers, timeout=30)
        assert response.status_code in DOCUMENTED, response.text
        expected = "application/json" if response.status_code == 200 else "application/problem+json"
        assert response.headers["content-type"] == expected
        assert CALLBACK_SECRET not in response.text

    answers_as_documented()
    ledger = stack.ledger_for(open_job["request_id"])
    assert [e["operation"] for e in ledger] in (["debit"], ["debit", "refund"])

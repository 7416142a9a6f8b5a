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

from creativeflow.api.webhook_signature import signed_headers
from tests.e2e.conftest import CALLBACK_SECRET, Stack, wait_for
from tests.e2e.test_generation_flow import submit

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "30")) * 2
DOCUMENTED = {200, 404, 409, 422, 503}

json_leaves = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
json_values = st.recursive(
    json_leaves,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=25,
)
urls = st.sampled_from(
    [
        "https://assets.creativeflow.local/x.png",
        "https://assets.creativeflow.local@evil.example/x.png",
        "https://assets.creativeflow.local\\@evil.example/x.png",
        "javascript:alert(1)",
        "http://[::1",
        "https://a.example:99999/x",
        "",
    ]
) | st.text(max_size=60)


def assets() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"id": st.text(max_size=20), "url": urls},
        optional={
            "width": st.integers(-5, 70_000) | json_leaves,
            "height": st.integers(-5, 70_000),
            "format": st.text(max_size=20),
        },
    )


@pytest.fixture(scope="module")
def open_job(stack: Stack) -> dict[str, Any]:
    """A real job waiting for n8n, so some bodies reach the use case and move it."""
    user = stack.new_user()
    created = submit(stack, user, prompt="[hold] fuzzed callbacks", samples=1)
    return wait_for(  # type: ignore[no-any-return]
        lambda: next((j for j in stack.jobs_published() if j["request_id"] == created["id"]), None)
    )


def ids(real: str) -> st.SearchStrategy[Any]:
    uuid_like = st.text(alphabet="0123456789abcdef-", min_size=1, max_size=80)
    return (
        st.sampled_from([real, str(uuid.uuid4())]) | uuid_like | st.text(max_size=80) | json_leaves
    )


def callback_bodies(job: dict[str, Any]) -> st.SearchStrategy[bytes]:
    """Mostly callback-shaped bodies (a valid event, so they reach the use case), then any JSON,
    then any bytes."""
    shaped = st.fixed_dictionaries(
        {
            "job_id": ids(job["job_id"]),
            "request_id": ids(job["request_id"]),
            "event": st.sampled_from(["samples_ready", "final_ready", "failed"]),
        },
        optional={
            "samples": st.lists(assets(), max_size=18) | json_values,
            "asset": assets() | json_values,
            "error": st.fixed_dictionaries(
                {},
                optional={
                    "category": st.sampled_from(["platform", "content_policy", "x"]),
                    "code": st.text(max_size=80),
                    "message": st.text(max_size=100),
                },
            )
            | json_values,
        },
    )
    odd_event = shaped.map(lambda body: {**body, "event": "nope"})
    as_json = (shaped | odd_event | json_values).map(lambda v: json.dumps(v).encode())
    return as_json | st.binary(max_size=120)


def _has_an_overlong_id(body: bytes) -> bool:
    """Known, reported: api/schemas.py allows ids of 64 characters, the table stores 36, so such
    a callback is a 500 (see test_a_signed_callback_with_an_overlong_id_is_a_4xx)."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return False
    return isinstance(parsed, dict) and any(
        isinstance(parsed.get(key), str) and 36 < len(parsed[key]) <= 64
        for key in ("job_id", "request_id")
    )


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
        if response.status_code == 500 and _has_an_overlong_id(body):
            return
        assert response.status_code in DOCUMENTED, response.text
        expected = "application/json" if response.status_code == 200 else "application/problem+json"
        assert response.headers["content-type"] == expected
        assert CALLBACK_SECRET not in response.text

    answers_as_documented()
    ledger = stack.ledger_for(open_job["request_id"])
    assert [e["operation"] for e in ledger] in (["debit"], ["debit", "refund"])

"""Submits whose text fields carry what schemathesis' generators seldom produce: NUL, lone
surrogates, control characters and look-alikes, anywhere in any text field and in the request id
of a read. Whatever the text: never a 5xx; a refusal is a 422 problem that stores nothing; what
is accepted is stored and read back exactly as sent."""

from __future__ import annotations

import json
import os
import urllib.parse
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.e2e.conftest import Stack
from tests.e2e.test_generation_flow import A_REQUEST
from tests.fuzz.conftest import hostile_text

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "30")) * 2
FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=not os.environ.get("FUZZ_RANDOM"),
    suppress_health_check=list(HealthCheck),
)


def _bodies() -> st.SearchStrategy[dict[str, Any]]:
    text = hostile_text(30)
    brand = st.fixed_dictionaries({}, optional={"fonts": st.lists(text, max_size=2), "tone": text})
    return st.fixed_dictionaries(
        {"prompt": text.map(lambda t: f"a lighthouse {t}")},
        optional={"style_guidance": text, "project_id": text, "brand_elements": brand},
    ).map(lambda changes: {**A_REQUEST, **changes})


def _read_back(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "prompt": body["prompt"],
        "style_guidance": body.get("style_guidance", A_REQUEST["style_guidance"]),
        "project_id": body.get("project_id", A_REQUEST["project_id"]),
    }


def test_submits_with_hostile_text_are_stored_exactly_or_refused_cleanly(stack: Stack) -> None:
    user = stack.new_user(tier="studio", balance=10**9)

    @FUZZ_SETTINGS
    @given(body=_bodies())
    def stored_or_refused(body: dict[str, Any]) -> None:
        # json.dumps escapes what is not ASCII, lone surrogates too, as a careless client would
        raw = json.dumps(body).encode()
        with stack.client(user) as client:
            before = client.get("/api/v1/generations", params={"limit": 1}).json()["total"]
            response = client.post(
                "/api/v1/generations", content=raw, headers={"content-type": "application/json"}
            )
            after = client.get("/api/v1/generations", params={"limit": 1}).json()["total"]
            assert response.status_code in (202, 422, 429), response.text
            assert response.headers["content-type"] in (
                "application/json",
                "application/problem+json",
            )
            if response.status_code == 202:
                stored = client.get(f"/api/v1/generations/{response.json()['id']}").json()
                expected = _read_back(body)
                assert {k: stored[k] for k in expected} == {
                    k: v.strip() if isinstance(v, str) and k != "style_guidance" else v
                    for k, v in expected.items()
                }
                assert after == before + 1
            else:
                assert after == before

    stored_or_refused()


def test_reads_of_any_request_id_are_never_a_5xx(stack: Stack) -> None:
    user = stack.new_user()

    @FUZZ_SETTINGS
    @given(request_id=hostile_text(40).filter(lambda t: t not in ("", ".", "..")))
    def never_5xx(request_id: str) -> None:
        quoted = urllib.parse.quote(request_id.encode("utf-8", "surrogatepass"), safe="")
        with stack.client(user) as client:
            response = client.get(f"/api/v1/generations/{quoted}")
        assert response.status_code in (404, 422), response.text

    never_5xx()

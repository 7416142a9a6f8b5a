"""Input at the edges, as an attacker or a careless client sends it, over real HTTP: characters
PostgreSQL cannot store, bodies that stream past the cap or nest without end, URLs that point
inside the network, parameters the service does not know. Each is a clear 4xx problem and
changes nothing; what n8n reports is kept, never lost to a character."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from creativeflow.webhook_signature import signed_headers
from tests.e2e.conftest import ADMIN_TOKEN, CALLBACK_SECRET, Stack, wait_for, wait_for_status
from tests.e2e.test_generation_flow import A_REQUEST, submit

NUL = "\x00"

NUL_BODIES = {
    "prompt": {**A_REQUEST, "prompt": f"a cat{NUL}"},
    "style_guidance": {**A_REQUEST, "style_guidance": f"soft{NUL}"},
    "project_id": {**A_REQUEST, "project_id": f"spring{NUL}"},
    "brand font": {**A_REQUEST, "brand_elements": {"fonts": [f"Inter{NUL}"]}},
    "brand tone": {**A_REQUEST, "brand_elements": {"tone": f"warm{NUL}"}},
    "brand logo": {**A_REQUEST, "brand_elements": {"logo_url": f"https://cdn.example/{NUL}.png"}},
    "escape in project": {**A_REQUEST, "project_id": "spring\x1b[31m"},
    "C1 control in prompt": {**A_REQUEST, "prompt": "a \x85cat"},
    "DEL in font": {**A_REQUEST, "brand_elements": {"fonts": ["Inter\x7f"]}},
}


def _no_request_and_no_charge(stack: Stack, user: str) -> None:
    with stack.client(user) as client:
        assert client.get("/api/v1/generations").json()["total"] == 0
    assert stack.ledger_of_user(user) == []


@pytest.mark.parametrize("body", NUL_BODIES.values(), ids=NUL_BODIES.keys())
def test_control_characters_in_a_submit_are_a_422_problem_and_store_nothing(
    stack: Stack, body: dict[str, Any]
) -> None:
    user = stack.new_user()
    with stack.client(user) as client:
        response = client.post("/api/v1/generations", json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    messages = [e["msg"] for e in response.json()["errors"]]
    assert any("control characters" in m or "URL" in m for m in messages), messages
    _no_request_and_no_charge(stack, user)


def test_tabs_and_line_breaks_in_a_prompt_are_text_not_control(stack: Stack) -> None:
    user = stack.new_user()
    created = submit(stack, user, prompt="line one\n\tline two\r\n[hold]")
    assert created["prompt"] == "line one\n\tline two\r\n[hold]"


@pytest.mark.parametrize(
    "path", ["%00", "abc%00def", "%1b", "x" * 37], ids=["nul", "inner-nul", "escape", "too-long"]
)
def test_a_request_id_that_cannot_be_one_is_a_422_problem(stack: Stack, path: str) -> None:
    user = stack.new_user()
    with stack.client(user) as client:
        read = client.get(f"/api/v1/generations/{path}")
        cancel = client.post(f"/api/v1/generations/{path}/cancel")
    for response in (read, cancel):
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"


LOGO_URLS = {
    "loopback": "http://127.0.0.1/logo.png",
    "loopback v6": "http://[::1]/logo.png",
    "metadata": "http://169.254.169.254/latest/meta-data/",
    "private": "http://10.0.0.7/logo.png",
    "localhost": "http://localhost:8000/logo.png",
    "userinfo": "https://cdn.example@evil.example/logo.png",
    "local name": "https://printer.local/logo.png",
}


@pytest.mark.parametrize("url", LOGO_URLS.values(), ids=LOGO_URLS.keys())
def test_a_logo_url_inside_the_network_or_with_userinfo_is_refused(stack: Stack, url: str) -> None:
    user = stack.new_user()
    body = {**A_REQUEST, "brand_elements": {"logo_url": url}}
    with stack.client(user) as client:
        response = client.post("/api/v1/generations", json=body)
    assert response.status_code == 422, response.text
    assert [e["loc"] for e in response.json()["errors"]] == [["body", "brand_elements", "logo_url"]]
    _no_request_and_no_charge(stack, user)


def test_a_public_logo_url_is_taken(stack: Stack) -> None:
    user = stack.new_user()
    logo = "https://cdn.example.com/brand/logo.png"
    created = submit(stack, user, prompt="[hold] logo", brand_elements={"logo_url": logo})
    assert created["brand_elements"]["logo_url"] == logo


def test_a_chunked_body_past_the_cap_is_413_not_a_decoding_error(stack: Stack) -> None:
    user = stack.new_user()

    def ten_megabytes() -> Iterator[bytes]:
        yield b'{"prompt": "'
        for _ in range(160):
            yield b"x" * 65536
        yield b'"}'

    with stack.client(user) as client:
        response = client.post(
            "/api/v1/generations",
            content=ten_megabytes(),
            headers={"content-type": "application/json"},
        )
    assert "content-length" not in response.request.headers  # it really streamed
    assert response.status_code == 413, response.text
    assert response.json()["type"] == "/problems/payload-too-large"
    _no_request_and_no_charge(stack, user)


def test_json_nested_without_end_is_a_422_that_says_so(stack: Stack) -> None:
    user = stack.new_user()
    deep = b"[" * 30_000 + b"]" * 30_000
    with stack.client(user) as client:
        response = client.post(
            "/api/v1/generations", content=deep, headers={"content-type": "application/json"}
        )
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["msg"] == "the JSON document is nested too deeply"
    _no_request_and_no_charge(stack, user)


def test_a_body_that_is_not_utf8_is_a_422_that_says_so(stack: Stack) -> None:
    user = stack.new_user()
    with stack.client(user) as client:
        response = client.post(
            "/api/v1/generations",
            content=b'{"prompt": "\xff\xfe"}',
            headers={"content-type": "application/json"},
        )
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["msg"] == "the body is not UTF-8 text"


# --- callbacks -------------------------------------------------------------------------------


def _post_callback(stack: Stack, payload: dict[str, Any]) -> httpx.Response:
    body = json.dumps(payload).encode()
    headers = signed_headers(CALLBACK_SECRET, f"msg_{uuid.uuid4().hex}", int(time.time()), body)
    with stack.client(None) as client:
        return client.post("/api/v1/callbacks/n8n", content=body, headers=headers)


def _held_job(stack: Stack, user: str) -> tuple[dict[str, Any], dict[str, Any]]:
    created = submit(stack, user, prompt="[hold] answered by hand")
    job = wait_for(
        lambda: next((j for j in stack.jobs_published() if j["request_id"] == created["id"]), None)
    )
    return created, job


@pytest.mark.parametrize("field", ["job_id", "request_id"])
def test_a_signed_callback_with_nul_in_an_id_is_a_422_and_changes_nothing(
    stack: Stack, field: str
) -> None:
    user = stack.new_user()
    created, job = _held_job(stack, user)
    payload = {
        "event": "samples_ready",
        "job_id": job["job_id"],
        "request_id": created["id"],
        "samples": [{"id": "s1", "url": "https://assets.example/1.png"}],
    }
    payload[field] = payload[field][:-1] + NUL
    response = _post_callback(stack, payload)
    assert response.status_code == 422, response.text
    with stack.client(user) as client:
        status = client.get(f"/api/v1/generations/{created['id']}").json()["status"]
    assert status == "PROCESSING_SAMPLES"


@pytest.mark.parametrize(
    "sample",
    [
        {"id": f"s1{NUL}", "url": "https://assets.example/1.png"},
        {"id": "s1", "url": "https://assets.example/1.png", "format": f"png{NUL}"},
    ],
    ids=["sample-id", "format"],
)
def test_a_signed_callback_with_nul_in_a_sample_is_a_422_and_changes_nothing(
    stack: Stack, sample: dict[str, Any]
) -> None:
    user = stack.new_user()
    created, job = _held_job(stack, user)
    payload = {
        "event": "samples_ready",
        "job_id": job["job_id"],
        "request_id": created["id"],
        "samples": [sample],
    }
    response = _post_callback(stack, payload)
    assert response.status_code == 422, response.text
    assert "\\u0000" not in response.text and NUL not in response.text


def test_a_failure_report_with_nul_in_its_text_is_applied_and_refunded_not_lost(
    stack: Stack,
) -> None:
    user = stack.new_user(balance=50)
    created, job = _held_job(stack, user)
    payload = {
        "event": "failed",
        "job_id": job["job_id"],
        "request_id": created["id"],
        "error": {
            "category": "platform",
            "code": f"provider{NUL}_down",
            "message": f"the provider{NUL} is down",
            "provider_note": f"raw{NUL}",
        },
    }
    response = _post_callback(stack, payload)
    assert response.status_code == 200, response.text
    assert response.json()["outcome"] == "applied"
    with stack.client(user) as client:
        failed = wait_for_status(client, created["id"], "FAILED")
    assert failed["failure"]["code"] == "provider_down"
    assert NUL not in failed["failure"]["message"]
    assert "provider is down" in failed["failure"]["message"]
    wait_for(lambda: len(stack.ledger_for(created["id"])) == 2)
    assert stack.emulator.balance(user) == 50


# --- what the routes take -----------------------------------------------------------------------


def test_a_regeneration_body_with_fields_is_refused_and_charges_nothing(stack: Stack) -> None:
    user = stack.new_user(balance=100)
    created = submit(stack, user, samples=2)
    with stack.client(user) as client:
        wait_for_status(client, created["id"], "AWAITING_SELECTION")
        before = stack.emulator.balance(user)
        refused = client.post(
            f"/api/v1/generations/{created['id']}/regeneration",
            json={"samples": 5, "prompt": "other"},
        )
        after = client.get(f"/api/v1/generations/{created['id']}").json()
    assert refused.status_code == 422, refused.text
    assert sorted(e["loc"][-1] for e in refused.json()["errors"]) == ["prompt", "samples"]
    assert after["status"] == "AWAITING_SELECTION" and after["regeneration_count"] == 0
    assert stack.emulator.balance(user) == before


def test_a_regeneration_with_an_empty_object_or_no_body_is_taken(stack: Stack) -> None:
    user = stack.new_user(balance=100)
    created = submit(stack, user, samples=2)
    with stack.client(user) as client:
        wait_for_status(client, created["id"], "AWAITING_SELECTION")
        first = client.post(f"/api/v1/generations/{created['id']}/regeneration", json={})
        assert first.status_code == 202, first.text
        wait_for_status(client, created["id"], "AWAITING_SELECTION")
        second = client.post(f"/api/v1/generations/{created['id']}/regeneration")
    assert second.status_code == 202, second.text
    assert second.json()["regeneration_count"] == 2


def test_the_list_filters_by_project_and_creation_time(stack: Stack) -> None:
    user = stack.new_user(balance=200)
    spring = submit(stack, user, prompt="[hold] spring", project_id="spring")
    autumn = submit(stack, user, prompt="[hold] autumn", project_id="autumn")
    with stack.client(user) as client:
        by_project = client.get("/api/v1/generations", params={"project_id": "spring"}).json()
        after_first = client.get(
            "/api/v1/generations", params={"created_from": autumn["created_at"]}
        ).json()
        before_second = client.get(
            "/api/v1/generations", params={"created_before": autumn["created_at"]}
        ).json()
        none_yet = client.get(
            "/api/v1/generations",
            params={"created_from": "2001-01-01T00:00:00", "created_before": "2001-01-02"},
        ).json()
        backwards = client.get(
            "/api/v1/generations",
            params={"created_from": autumn["created_at"], "created_before": spring["created_at"]},
        ).json()
    assert [r["id"] for r in by_project["items"]] == [spring["id"]]
    assert [r["id"] for r in after_first["items"]] == [autumn["id"]]
    assert [r["id"] for r in before_second["items"]] == [spring["id"]]
    assert none_yet["total"] == 0
    assert backwards["total"] == 0  # an empty window, not an error


@pytest.mark.parametrize(
    "params",
    [{"project": "spring"}, {"sort": "oldest"}, {"project_id": "x\x00"}],
    ids=["misspelt", "unsupported", "nul"],
)
def test_an_unknown_or_unusable_list_parameter_is_refused_not_ignored(
    stack: Stack, params: dict[str, str]
) -> None:
    user = stack.new_user()
    with stack.client(user) as client:
        response = client.get("/api/v1/generations", params=params)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"


def test_a_202_says_where_to_poll_and_when(stack: Stack) -> None:
    user = stack.new_user()
    with stack.client(user) as client:
        response = client.post(
            "/api/v1/generations", json={**A_REQUEST, "prompt": "[hold] poll me"}
        )
        polled = client.get(response.headers["location"])
    assert response.status_code == 202
    assert response.headers["location"] == f"/api/v1/generations/{response.json()['id']}"
    assert int(response.headers["retry-after"]) > 0
    assert polled.status_code == 200 and polled.json()["id"] == response.json()["id"]


def test_openapi_documents_every_error_of_a_submit_as_problem_json(stack: Stack) -> None:
    with stack.client(None) as client:
        document = client.get("/openapi.json").json()
    responses = document["paths"]["/api/v1/generations"]["post"]["responses"]
    for status in ("401", "402", "403", "409", "413", "422", "429", "500", "503"):
        content = responses[status]["content"]["application/problem+json"]
        assert {"type", "title", "status", "detail"} <= set(content["schema"]["properties"])
        assert content["example"]["status"] == int(status)
    assert set(responses["202"]["headers"]) == {"Location", "Retry-After"}


def test_an_integral_number_written_with_a_fraction_is_an_integer(stack: Stack) -> None:
    user = stack.new_user()
    created = submit(stack, user, prompt="[hold] floats", width=1024.0, samples=2.0)
    assert (created["width"], created["samples_count"]) == (1024, 2)


@pytest.mark.parametrize("moment", ["1700000000", "1.7e9", " 42 "])
def test_a_bare_number_is_not_taken_as_a_time(stack: Stack, moment: str) -> None:
    user = stack.new_user()
    with stack.client(user) as client:
        listed = client.get("/api/v1/generations", params={"created_from": moment})
        admin = client.get(
            "/api/v1/admin/reconciliation",
            params={"since": moment},
            headers={"X-Admin-Token": ADMIN_TOKEN},
        )
    for response in (listed, admin):
        assert response.status_code == 422, response.text
        assert "ISO 8601" in response.json()["errors"][0]["msg"]

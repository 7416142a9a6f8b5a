"""What the service refuses, and that a refusal changes nothing: bad input, other users' requests,
actions out of turn, unsigned callbacks."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from creativeflow.webhook_signature import signed_headers
from tests.e2e.conftest import CALLBACK_SECRET, Stack, wait_for_status
from tests.e2e.test_generation_flow import A_REQUEST, submit

BAD_BODIES = {
    "missing prompt": {k: v for k, v in A_REQUEST.items() if k != "prompt"},
    "empty prompt": {**A_REQUEST, "prompt": "   "},
    "huge prompt": {**A_REQUEST, "prompt": "x" * 4001},
    "zero samples": {**A_REQUEST, "samples": 0},
    "negative samples": {**A_REQUEST, "samples": -1},
    "too many samples": {**A_REQUEST, "samples": 17},
    "unknown format": {**A_REQUEST, "format": "bmp"},
    "samples as text": {**A_REQUEST, "samples": "3"},
    "width as float": {**A_REQUEST, "width": 1024.5},
    "tiny width": {**A_REQUEST, "width": 1},
    "unknown field": {**A_REQUEST, "priority": "high"},
    "bad brand colour": {**A_REQUEST, "brand_elements": {"colors": ["orange"]}},
    "list body": [A_REQUEST],
    "unknown tone": {**A_REQUEST, "tone": "angry"},
    "tone as a list": {**A_REQUEST, "tone": ["bold"]},
    "upper-case template": {**A_REQUEST, "template": "Spring-Sale"},
    "template with a slash": {**A_REQUEST, "template": "../sale"},
    "locale in the wrong case": {**A_REQUEST, "cultural_adaptation": {"locale": "ja-jp"}},
    "locale missing": {**A_REQUEST, "cultural_adaptation": {"notes": "no fours"}},
    "NUL in the notes": {
        **A_REQUEST,
        "cultural_adaptation": {"locale": "ja", "notes": "no\u0000fours"},
    },
    "unknown platform": {**A_REQUEST, "target_platform": "myspace"},
}


@pytest.mark.parametrize("body", BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_bad_input_is_a_422_problem_and_stores_nothing(stack: Stack, body: object) -> None:
    user = stack.new_user()
    with stack.client(user) as client:
        response = client.post("/api/v1/generations", json=body)
        listed = client.get("/api/v1/generations").json()
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 422 and problem["errors"]
    assert listed["total"] == 0
    assert stack.ledger_of_user(user) == []


def test_malformed_json_is_a_422_problem(stack: Stack) -> None:
    user = stack.new_user()
    with stack.client(user) as client:
        response = client.post(
            "/api/v1/generations",
            content=b'{"prompt": "a cat",',
            headers={"content-type": "application/json"},
        )
        assert client.get("/api/v1/generations").json()["total"] == 0
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


def test_an_oversized_body_is_refused_before_it_is_read(stack: Stack) -> None:
    user = stack.new_user()
    with stack.client(user) as client:
        response = client.post(
            "/api/v1/generations", json={**A_REQUEST, "style_guidance": "x" * 70_000}
        )
    assert response.status_code == 413
    assert stack.ledger_of_user(user) == []


def test_a_missing_gateway_credential_is_401(stack: Stack) -> None:
    with stack.client(None) as client:
        no_user = client.get("/api/v1/generations")
        client.headers["X-Gateway-Secret"] = "wrong"
        client.headers["X-User-Id"] = "demo-user"
        wrong_secret = client.get("/api/v1/generations")
    assert no_user.status_code == 401
    assert wrong_secret.status_code == 401
    assert "wrong" not in wrong_secret.text


def test_another_users_request_is_404_on_every_route(stack: Stack) -> None:
    owner = stack.new_user()
    created = submit(stack, owner, samples=1)
    with stack.client(owner) as client:
        wait_for_status(client, created["id"], "AWAITING_SELECTION")
    intruder = stack.new_user()
    request_id = created["id"]
    with stack.client(intruder) as client:
        answers = [
            client.get(f"/api/v1/generations/{request_id}"),
            client.post(f"/api/v1/generations/{request_id}/selection", json={"sample_id": "s1"}),
            client.post(f"/api/v1/generations/{request_id}/regeneration"),
            client.post(f"/api/v1/generations/{request_id}/cancel"),
        ]
        listed = client.get("/api/v1/generations").json()
    assert [a.status_code for a in answers] == [404, 404, 404, 404]
    assert listed["total"] == 0
    with stack.client(owner) as client:
        assert (
            client.get(f"/api/v1/generations/{request_id}").json()["status"] == "AWAITING_SELECTION"
        )
    assert [e["operation"] for e in stack.ledger_for(request_id)] == ["debit"]


def test_an_unknown_id_is_404(stack: Stack) -> None:
    with stack.client(stack.new_user()) as client:
        response = client.get(f"/api/v1/generations/{uuid.uuid4()}")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_selection_before_samples_exist_is_409_and_charges_nothing(stack: Stack) -> None:
    user = stack.new_user()
    created = submit(stack, user, prompt="[hold] slow one")
    with stack.client(user) as client:
        response = client.post(
            f"/api/v1/generations/{created['id']}/selection", json={"sample_id": "s1"}
        )
        regenerate = client.post(f"/api/v1/generations/{created['id']}/regeneration")
    assert response.status_code == 409
    assert response.json()["current_status"] == "PROCESSING_SAMPLES"
    assert regenerate.status_code == 409
    assert [e["action"] for e in stack.ledger_for(created["id"])] == ["samples"]


def test_selecting_a_sample_that_does_not_exist_is_409(stack: Stack) -> None:
    user = stack.new_user()
    created = submit(stack, user, samples=1)
    with stack.client(user) as client:
        wait_for_status(client, created["id"], "AWAITING_SELECTION")
        response = client.post(
            f"/api/v1/generations/{created['id']}/selection", json={"sample_id": "nope"}
        )
    assert response.status_code == 409
    assert [e["action"] for e in stack.ledger_for(created["id"])] == ["samples"]


def test_cancel_while_awaiting_selection_ends_the_request(stack: Stack) -> None:
    user = stack.new_user()
    created = submit(stack, user, samples=1)
    with stack.client(user) as client:
        wait_for_status(client, created["id"], "AWAITING_SELECTION")
        cancelled = client.post(f"/api/v1/generations/{created['id']}/cancel")
        again = client.post(f"/api/v1/generations/{created['id']}/cancel")
        select = client.post(
            f"/api/v1/generations/{created['id']}/selection", json={"sample_id": "s1"}
        )
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "CANCELLED"
    assert again.status_code == 409
    assert select.status_code == 409


def test_an_unsigned_or_forged_callback_is_401_and_changes_nothing(stack: Stack) -> None:
    user = stack.new_user()
    created = submit(stack, user, prompt="[hold] waiting for n8n")
    job = next(j for j in stack.jobs_published() if j["request_id"] == created["id"])
    body = json.dumps(
        {
            "event": "samples_ready",
            "job_id": job["job_id"],
            "request_id": created["id"],
            "samples": [{"id": "s1", "url": "https://evil.example/x.png"}],
        }
    ).encode()
    forged = signed_headers("not-the-secret", "msg_forged", int(time.time()), body)
    with stack.client(user) as client:
        unsigned = client.post("/api/v1/callbacks/n8n", content=body)
        wrong = client.post("/api/v1/callbacks/n8n", content=body, headers=forged)
        status = client.get(f"/api/v1/generations/{created['id']}").json()["status"]
    assert unsigned.status_code == 401
    assert wrong.status_code == 401
    assert status == "PROCESSING_SAMPLES"


def test_a_replayed_callback_is_refused_and_a_duplicate_event_changes_nothing(stack: Stack) -> None:
    user = stack.new_user()
    created = submit(stack, user, prompt="[hold] answered by hand")
    job = next(j for j in stack.jobs_published() if j["request_id"] == created["id"])
    body = json.dumps(
        {
            "event": "samples_ready",
            "job_id": job["job_id"],
            "request_id": created["id"],
            "samples": [{"id": "s1", "url": "https://assets.example/1.png"}],
        }
    ).encode()
    headers = signed_headers(CALLBACK_SECRET, f"msg_{uuid.uuid4().hex}", int(time.time()), body)
    other_delivery = signed_headers(
        CALLBACK_SECRET, f"msg_{uuid.uuid4().hex}", int(time.time()), body
    )
    with stack.client(user) as client:
        first = client.post("/api/v1/callbacks/n8n", content=body, headers=headers)
        replay = client.post("/api/v1/callbacks/n8n", content=body, headers=headers)
        duplicate = client.post(
            "/api/v1/callbacks/n8n/samples", content=body, headers=other_delivery
        )
        after = client.get(f"/api/v1/generations/{created['id']}").json()
    assert first.status_code == 200 and first.json()["outcome"] == "applied"
    assert replay.status_code == 409
    assert duplicate.status_code == 200 and duplicate.json()["outcome"] == "duplicate"
    assert after["status"] == "AWAITING_SELECTION"
    assert [s["id"] for s in after["samples"]] == ["s1"]


def test_a_callback_for_an_unknown_job_is_404(stack: Stack) -> None:
    body = json.dumps(
        {
            "event": "failed",
            "job_id": str(uuid.uuid4()),
            "request_id": str(uuid.uuid4()),
            "error": {"category": "platform", "code": "x"},
        }
    ).encode()
    headers = signed_headers(CALLBACK_SECRET, f"msg_{uuid.uuid4().hex}", int(time.time()), body)
    with stack.client(None) as client:
        response = client.post("/api/v1/callbacks/n8n", content=body, headers=headers)
    assert response.status_code == 404


def test_list_is_newest_first_paginated_and_filtered_by_status(stack: Stack) -> None:
    user = stack.new_user(balance=200)
    first = submit(stack, user, prompt="[hold] first")
    second = submit(stack, user, prompt="[hold] second")
    with stack.client(user) as client:
        page = client.get("/api/v1/generations", params={"limit": 1}).json()
        rest = client.get("/api/v1/generations", params={"limit": 1, "offset": 1}).json()
        processing = client.get(
            "/api/v1/generations", params={"status": "PROCESSING_SAMPLES"}
        ).json()
        completed = client.get("/api/v1/generations", params={"status": "COMPLETED"}).json()
        bad = client.get("/api/v1/generations", params={"status": "NOPE"})
    assert page["total"] == 2
    assert [r["id"] for r in page["items"]] == [second["id"]]
    assert [r["id"] for r in rest["items"]] == [first["id"]]
    assert processing["total"] == 2 and completed["total"] == 0
    assert bad.status_code == 422


def test_the_tiers_cap_on_requests_in_flight_is_429_and_charges_nothing(stack: Stack) -> None:
    user = stack.new_user(tier="free", balance=100)  # the free tier allows 2 unfinished requests
    small = {**A_REQUEST, "samples": 1, "brand_elements": None, "prompt": "[hold] waiting"}
    with stack.client(user) as client:
        first = client.post("/api/v1/generations", json=small)
        second = client.post("/api/v1/generations", json=small)
        third = client.post("/api/v1/generations", json=small)
    assert [first.status_code, second.status_code] == [202, 202]
    assert third.status_code == 429, third.text
    problem = third.json()
    assert problem["reason"] == "too_many_requests_in_flight"
    assert problem["requests_in_flight"] == 2 and problem["max_requests_in_flight"] == 2
    assert [e["operation"] for e in stack.ledger_of_user(user)] == ["debit", "debit"]

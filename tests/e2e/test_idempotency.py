"""Idempotency keys (invariant 3): a retried submit returns the first answer and never charges
again; another body with the same key is refused; concurrent retries charge once."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

from tests.e2e.conftest import Stack, wait_for_status
from tests.e2e.test_generation_flow import A_REQUEST


def test_a_retried_submit_returns_the_first_answer_and_charges_once(stack: Stack) -> None:
    user = stack.new_user(balance=100)
    key = {"Idempotency-Key": uuid.uuid4().hex}
    with stack.client(user) as client:
        first = client.post("/api/v1/generations", json=A_REQUEST, headers=key)
        second = client.post("/api/v1/generations", json=A_REQUEST, headers=key)
        listed = client.get("/api/v1/generations").json()
    assert first.status_code == second.status_code == 202
    assert second.json() == first.json()
    assert second.headers.get("idempotent-replayed") == "true"
    assert listed["total"] == 1
    assert [e["operation"] for e in stack.ledger_of_user(user)] == ["debit"]


def test_the_same_key_with_another_body_is_422_and_changes_nothing(stack: Stack) -> None:
    user = stack.new_user(balance=100)
    key = {"Idempotency-Key": uuid.uuid4().hex}
    with stack.client(user) as client:
        first = client.post("/api/v1/generations", json=A_REQUEST, headers=key)
        other = client.post(
            "/api/v1/generations", json={**A_REQUEST, "prompt": "something else"}, headers=key
        )
        listed = client.get("/api/v1/generations").json()
    assert first.status_code == 202
    assert other.status_code == 422
    assert other.json()["type"] == "/problems/idempotency-key-reused"
    assert listed["total"] == 1
    assert len(stack.ledger_of_user(user)) == 1


def test_keys_belong_to_their_user(stack: Stack) -> None:
    key = {"Idempotency-Key": uuid.uuid4().hex}
    alice, bob = stack.new_user(), stack.new_user()
    with stack.client(alice) as client:
        assert client.post("/api/v1/generations", json=A_REQUEST, headers=key).status_code == 202
    with stack.client(bob) as client:
        answer = client.post("/api/v1/generations", json=A_REQUEST, headers=key)
    assert answer.status_code == 202
    assert len(stack.ledger_of_user(bob)) == 1


def test_a_refusal_is_replayed_too(stack: Stack) -> None:
    user = stack.new_user(balance=1)
    key = {"Idempotency-Key": uuid.uuid4().hex}
    with stack.client(user) as client:
        first = client.post("/api/v1/generations", json=A_REQUEST, headers=key)
        again = client.post("/api/v1/generations", json=A_REQUEST, headers=key)
    assert first.status_code == again.status_code == 402
    assert again.json() == first.json()
    assert again.headers["content-type"] == "application/problem+json"


def test_fifty_concurrent_retries_of_one_submit_charge_once_and_publish_one_job(
    stack: Stack,
) -> None:
    user = stack.new_user(balance=100)
    key = {"Idempotency-Key": uuid.uuid4().hex}
    stack.emulator.faults.latency = 0.2  # keep the first call in flight while the others arrive

    def post(_: int) -> int:
        with stack.client(user) as client:
            return client.post("/api/v1/generations", json=A_REQUEST, headers=key).status_code

    try:
        with ThreadPoolExecutor(max_workers=50) as pool:
            statuses = list(pool.map(post, range(50)))
    finally:
        stack.emulator.faults.latency = 0
    assert set(statuses) <= {202, 409}, statuses
    assert 202 in statuses
    with stack.client(user) as client:
        after = client.post("/api/v1/generations", json=A_REQUEST, headers=key)
        listed = client.get("/api/v1/generations").json()
        wait_for_status(client, listed["items"][0]["id"], "AWAITING_SELECTION")
    assert after.status_code == 202
    assert listed["total"] == 1
    debits = [e for e in stack.ledger_of_user(user) if e["operation"] == "debit"]
    assert len(debits) == 1
    jobs = [j for j in stack.jobs_published() if j["user_id"] == user]
    assert len(jobs) == 1


def test_a_retried_selection_charges_the_final_asset_once(stack: Stack) -> None:
    user = stack.new_user(balance=100)
    with stack.client(user) as client:
        created = client.post("/api/v1/generations", json={**A_REQUEST, "samples": 1}).json()
        awaiting = wait_for_status(client, created["id"], "AWAITING_SELECTION")
        key = {"Idempotency-Key": uuid.uuid4().hex}
        body = {"sample_id": awaiting["samples"][0]["id"]}
        path = f"/api/v1/generations/{created['id']}/selection"
        first = client.post(path, json=body, headers=key)
        second = client.post(path, json=body, headers=key)
    assert first.status_code == second.status_code == 202
    assert second.json() == first.json()
    finals = [e for e in stack.ledger_for(created["id"]) if e["action"].startswith("final")]
    assert len(finals) == 1

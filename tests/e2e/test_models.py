"""The model a request runs on, end to end: Odoo's tier grants it (the one asked for, else the
tier's default), the request view and the job message name it, the ledger records it, and a
model the plan does not include is a 403 problem with nothing charged or stored."""

from __future__ import annotations

import uuid
from dataclasses import replace

import jsonschema

from tests.e2e.conftest import Stack, wait_for, wait_for_status
from tests.e2e.test_generation_flow import A_REQUEST, SCHEMA, submit

STANDARD = "creativeflow-standard-v1"
DRAFT = "creativeflow-draft-v1"
ADVANCED = "creativeflow-advanced-v1"
ONE_SAMPLE = {**A_REQUEST, "samples": 1}  # within every tier's limits


def _jobs_of(stack: Stack, request_id: str, count: int) -> list[dict]:  # type: ignore[type-arg]
    return wait_for(  # type: ignore[no-any-return]
        lambda: (
            jobs
            if len(jobs := [j for j in stack.jobs_published() if j["request_id"] == request_id])
            >= count
            else None
        )
    )


def test_credits_list_the_models_of_the_plan_and_its_default(stack: Stack) -> None:
    free, studio = stack.new_user(tier="free"), stack.new_user(tier="studio")
    with stack.client(free) as client:
        free_limits = client.get("/api/v1/credits").json()["limits"]
    with stack.client(studio) as client:
        studio_limits = client.get("/api/v1/credits").json()["limits"]

    assert free_limits["models"] == [STANDARD, DRAFT]
    assert free_limits["default_model"] == STANDARD
    assert free_limits["advanced_models"] is False
    assert studio_limits["models"] == [STANDARD, DRAFT, ADVANCED]
    assert studio_limits["default_model"] == ADVANCED
    assert studio_limits["advanced_models"] is True


def test_no_model_asked_runs_on_the_plans_default_through_every_step(stack: Stack) -> None:
    user = stack.new_user(tier="studio", balance=100)  # studio's default: the advanced model
    created = submit(stack, user, samples=1)
    request_id = created["id"]
    with stack.client(user) as client:
        awaiting = wait_for_status(client, request_id, "AWAITING_SELECTION")
        chosen = awaiting["samples"][0]["id"]
        client.post(f"/api/v1/generations/{request_id}/selection", json={"sample_id": chosen})
        done = wait_for_status(client, request_id, "COMPLETED")

    assert created["model"] == ADVANCED
    assert done["model"] == ADVANCED
    jobs = _jobs_of(stack, request_id, 2)
    assert [(j["stage"], j["model"]) for j in jobs] == [("samples", ADVANCED), ("final", ADVANCED)]
    for job in jobs:
        jsonschema.validate(job, SCHEMA)
    assert [e["model"] for e in stack.ledger_for(request_id)] == [ADVANCED, ADVANCED]


def test_a_model_the_plan_includes_is_granted_and_recorded(stack: Stack) -> None:
    user = stack.new_user(tier="free", balance=100)
    created = submit(stack, user, samples=1, model=DRAFT)
    request_id = created["id"]
    with stack.client(user) as client:
        wait_for_status(client, request_id, "AWAITING_SELECTION")
        regenerated = client.post(f"/api/v1/generations/{request_id}/regeneration")
        assert regenerated.status_code == 202, regenerated.text
        view = wait_for_status(client, request_id, "AWAITING_SELECTION")
        history = client.get("/api/v1/credits/history").json()["items"]

    assert (created["model"], view["model"]) == (DRAFT, DRAFT)
    assert [j["model"] for j in _jobs_of(stack, request_id, 2)] == [DRAFT, DRAFT]
    assert [(e["action"], e["model"]) for e in stack.ledger_for(request_id)] == [
        ("samples", DRAFT),
        ("regeneration-1", DRAFT),
    ]
    assert {item["model"] for item in history if item["request_id"] == request_id} == {DRAFT}


def test_a_model_the_plan_does_not_include_is_403_and_charges_nothing(stack: Stack) -> None:
    user = stack.new_user(tier="free", balance=100)
    with stack.client(user) as client:
        for model in (ADVANCED, "creativeflow-unknown-v9"):
            refused = client.post("/api/v1/generations", json={**ONE_SAMPLE, "model": model})
            assert refused.status_code == 403, refused.text
            assert refused.headers["content-type"] == "application/problem+json"
            problem = refused.json()
            assert (problem["code"], problem["reason"]) == ("tier_forbids", "model_not_allowed")
            assert "plan does not include this model" in problem["detail"]
        legacy = client.post("/api/v1/generations", json={**ONE_SAMPLE, "advanced_model": True})
        listed = client.get("/api/v1/generations").json()

    assert legacy.status_code == 403 and legacy.json()["reason"] == "model_not_allowed"
    assert stack.ledger_of_user(user) == []
    assert stack.emulator.balance(user) == 100
    assert all(item["status"] == "REFUSED" for item in listed["items"])


def test_the_older_advanced_flag_asks_for_the_advanced_model(stack: Stack) -> None:
    user = stack.new_user(tier="pro", balance=100)  # pro's default: the standard model
    created = submit(stack, user, samples=1, advanced_model=True)
    plain = submit(stack, user, samples=1)
    named = submit(stack, user, samples=1, advanced_model=True, model=DRAFT)

    assert created["model"] == ADVANCED
    assert plain["model"] == STANDARD
    assert named["model"] == DRAFT  # a model named wins, as in Odoo


def test_the_quote_names_the_model_and_the_plans_models(stack: Stack) -> None:
    user = stack.new_user(tier="free", balance=100)
    with stack.client(user) as client:
        default = client.post("/api/v1/generations/quote", json={**A_REQUEST, "samples": 1}).json()
        refused = client.post(
            "/api/v1/generations/quote", json={**A_REQUEST, "samples": 1, "model": ADVANCED}
        ).json()

    assert (default["allowed"], default["model"]) == (True, STANDARD)
    assert (default["models"], default["default_model"]) == ([STANDARD, DRAFT], STANDARD)
    assert refused["allowed"] is False and refused["model"] is None
    assert refused["refusal"]["reason"] == "model_not_allowed"
    assert stack.ledger_of_user(user) == []


BAD_MODELS = {
    "upper case": "Creativeflow-Advanced-V1",
    "a blank": "creativeflow advanced",
    "a newline": "creativeflow-advanced-v1\n",
    "NUL": "creativeflow\u0000advanced",
    "too long": "m" * 65,
    "empty": "",
    "a number": 1,
    "a list": [ADVANCED],
}


def test_a_model_out_of_syntax_is_a_422_and_stores_nothing(
    stack: Stack,
) -> None:
    user = stack.new_user(tier="pro", balance=100)
    bodies = [{**A_REQUEST, "model": bad} for bad in BAD_MODELS.values()]
    with stack.client(user) as client:
        answers = [client.post("/api/v1/generations", json=body) for body in bodies]
        listed = client.get("/api/v1/generations").json()

    for body, answer in zip(bodies, answers, strict=True):
        assert answer.status_code == 422, (body["model"], answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
    assert listed["total"] == 0
    assert stack.ledger_of_user(user) == []


def test_a_model_taken_off_the_plan_refuses_the_next_step_and_charges_nothing(
    stack: Stack,
) -> None:
    """Every later step asks Odoo for the request's model again: an admin who takes the model
    off the tier meanwhile makes the selection and the regeneration 403, nothing charged."""
    code = f"e2e-{uuid.uuid4().hex[:8]}"
    plan = replace(stack.emulator.tier("pro"), code=code, models=(STANDARD, DRAFT))
    stack.emulator.set_tier(plan)
    user = stack.new_user(tier=code, balance=100)
    created = submit(stack, user, samples=1, model=DRAFT)
    request_id = created["id"]
    with stack.client(user) as client:
        awaiting = wait_for_status(client, request_id, "AWAITING_SELECTION")
        stack.emulator.set_tier(replace(plan, models=(STANDARD,)))
        selected = client.post(
            f"/api/v1/generations/{request_id}/selection",
            json={"sample_id": awaiting["samples"][0]["id"]},
        )
        regenerated = client.post(f"/api/v1/generations/{request_id}/regeneration")
        after = client.get(f"/api/v1/generations/{request_id}").json()

    for refused in (selected, regenerated):
        assert refused.status_code == 403, refused.text
        assert refused.json()["reason"] == "model_not_allowed"
    assert after["status"] == "AWAITING_SELECTION" and after["model"] == DRAFT
    assert [(e["action"], e["operation"]) for e in stack.ledger_for(request_id)] == [
        ("samples", "debit")
    ]
    assert stack.emulator.balance(user) == 100 - created["credits_charged"]

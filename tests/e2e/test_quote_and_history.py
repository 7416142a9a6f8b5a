"""What a request would cost before it is made, and what the user was charged after, over HTTP
against the emulated Odoo."""

from __future__ import annotations

from tests.e2e.conftest import Stack, wait_for_status

A_REQUEST = {
    "prompt": "a lighthouse at dawn, watercolour",
    "format": "png",
    "width": 1024,
    "height": 1024,
    "samples": 3,
}


def test_a_quote_prices_every_step_and_charges_nothing(stack: Stack) -> None:
    user = stack.new_user(balance=100)
    with stack.client(user) as client:
        response = client.post("/api/v1/generations/quote", json=A_REQUEST)
        listed = client.get("/api/v1/generations").json()
    assert response.status_code == 200, response.text
    assert response.json() == {
        "allowed": True,
        "refusal": None,
        "tier": "pro",
        "costs": {"samples": 6, "final": 10, "regeneration": 3},
        "balance": 100,
        "affordable": True,
        "model": "creativeflow-standard-v1",
        "models": ["creativeflow-standard-v1", "creativeflow-draft-v1", "creativeflow-advanced-v1"],
        "default_model": "creativeflow-standard-v1",
    }
    assert listed["items"] == []
    assert stack.ledger_of_user(user) == []
    assert stack.emulator.balance(user) == 100


def test_a_quote_says_why_a_submit_would_be_refused_in_the_users_words(stack: Stack) -> None:
    poor = stack.new_user(balance=2)
    free = stack.new_user(balance=100, tier="free")
    with stack.client(poor) as client:
        short = client.post("/api/v1/generations/quote", json=A_REQUEST).json()
    with stack.client(free) as client:
        plan = client.post("/api/v1/generations/quote", json={**A_REQUEST, "format": "webp"}).json()
    assert (short["allowed"], short["affordable"]) == (False, False)
    assert short["refusal"] == {
        "code": "insufficient_credits",
        "reason": None,
        "message": "This needs 6 credits and your balance is 2. Add credits or ask for fewer "
        "samples, then try again.",
    }
    assert (plan["allowed"], plan["tier"]) == (False, "free")
    assert plan["refusal"]["code"] == "tier_forbids"
    assert plan["refusal"]["reason"] == "format_not_allowed"
    assert "Odoo" not in plan["refusal"]["message"]


def test_a_quote_takes_the_submit_body_and_refuses_a_bad_one_alike(stack: Stack) -> None:
    user = stack.new_user(balance=100)
    before = stack.emulator.request_count()
    with stack.client(user) as client:
        unknown = client.post("/api/v1/generations/quote", json={**A_REQUEST, "colour": "red"})
        zero = client.post("/api/v1/generations/quote", json={**A_REQUEST, "samples": 0})
        nul = client.post("/api/v1/generations/quote", json={**A_REQUEST, "prompt": "a\u0000b"})
    assert [unknown.status_code, zero.status_code, nul.status_code] == [422, 422, 422]
    assert unknown.headers["content-type"] == "application/problem+json"
    assert stack.emulator.request_count() == before  # refused before Odoo is asked


def test_the_history_lists_the_users_own_movements_newest_first(stack: Stack) -> None:
    user, other = stack.new_user(balance=100), stack.new_user(balance=100)
    with stack.client(other) as client:
        assert client.post("/api/v1/generations", json=A_REQUEST).status_code == 202
    with stack.client(user) as client:
        created = client.post("/api/v1/generations", json=A_REQUEST).json()
        wait_for_status(client, created["id"], "AWAITING_SELECTION")
        regenerated = client.post(f"/api/v1/generations/{created['id']}/regeneration")
        assert regenerated.status_code == 202, regenerated.text
        first = client.get("/api/v1/credits/history", params={"limit": 1})
        rest = client.get("/api/v1/credits/history", params={"limit": 5, "offset": 1})
    assert first.status_code == 200, first.text
    page, more = first.json(), rest.json()
    assert (page["limit"], page["offset"], page["has_more"]) == (1, 0, True)
    [newest] = page["items"]
    assert (newest["operation"], newest["action"], newest["change"]) == (
        "debit",
        "regeneration-1",
        -3,
    )
    assert newest["request_id"] == created["id"]
    assert newest["balance_after"] == 91
    assert newest["created_at"].endswith("Z") or newest["created_at"].endswith("+00:00")
    assert [(i["action"], i["change"], i["balance_after"]) for i in more["items"]] == [
        ("samples", -6, 94)
    ]
    assert more["has_more"] is False


def test_the_history_refuses_unknown_parameters_and_pages_out_of_range(stack: Stack) -> None:
    user = stack.new_user(balance=10)
    with stack.client(user) as client:
        answers = [
            client.get("/api/v1/credits/history", params=params).status_code
            for params in (
                {"limit": 0},
                {"limit": 101},
                {"offset": -1},
                {"page": 2},
                {"limit": "x"},
            )
        ]
        empty = client.get("/api/v1/credits/history").json()
    assert answers == [422] * 5
    assert empty == {"items": [], "limit": 20, "offset": 0, "has_more": False}


def test_without_a_credit_account_the_history_says_so(stack: Stack) -> None:
    with stack.client("no-account-user") as client:
        response = client.get("/api/v1/credits/history")
    assert response.status_code == 403
    assert response.json()["code"] == "unknown_account"

"""The answers of last resort: an unexpected error is a problem that carries the request id its log
line carries, and a value the database refuses is the client's 422, never a 500."""

from __future__ import annotations

import logging

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.exc import DataError

from creativeflow.adapters.odoo.errors import OdooRejected
from creativeflow.api.middleware import CorrelationIdMiddleware
from creativeflow.api.problems import install_problem_handlers
from creativeflow.domain.errors import CreditServiceUnavailable
from creativeflow.logging_setup import CorrelationFilter


def make_app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    app.add_middleware(CorrelationIdMiddleware)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("db password is hunter2")

    @app.get("/unstorable")
    async def unstorable() -> None:
        raise DataError("INSERT ... VALUES ('a\\x00')", {}, ValueError("NUL"))

    @app.get("/odoo-down")
    async def odoo_down() -> None:
        raise CreditServiceUnavailable("connection refused by odoo.internal:8069 [Errno 111]")

    @app.get("/refused")
    async def refused() -> None:
        # as the Odoo adapter raises it: Odoo's own text is the error's detail
        raise OdooRejected(
            "tier_forbids", reason="format_not_allowed", tier="free", detail="webp not in png"
        )

    return app


@pytest.fixture
def client() -> TestClient:
    return TestClient(make_app(), raise_server_exceptions=False)


def test_a_500_carries_the_request_id_its_log_line_carries(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.handler.addFilter(CorrelationFilter())
    with caplog.at_level(logging.ERROR):
        response = client.get("/boom", headers={"X-Request-ID": "req-42"})
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-request-id"] == "req-42"
    assert response.json()["request_id"] == "req-42"
    assert "hunter2" not in response.text
    records = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [getattr(r, "correlation_id", None) for r in records] == ["req-42"]


def test_a_500_without_an_offered_id_still_gets_one(client: TestClient) -> None:
    response = client.get("/boom")
    assert response.status_code == 500
    assert response.headers["x-request-id"] == response.json()["request_id"]
    assert response.json()["request_id"]


def test_a_value_the_database_refuses_is_a_422_that_quotes_nothing(client: TestClient) -> None:
    response = client.get("/unstorable")
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert "INSERT" not in response.text and "NUL" not in response.text


def test_a_503_names_no_internal_host_and_tells_the_user_what_to_do(client: TestClient) -> None:
    response = client.get("/odoo-down")
    assert response.status_code == 503
    assert "odoo.internal" not in response.text and "Errno" not in response.text
    assert response.json()["detail"].endswith("Try again in a few seconds.")


def test_a_refusal_speaks_to_the_user_and_keeps_its_code_and_figures(client: TestClient) -> None:
    response = client.get("/refused")
    body = response.json()
    assert response.status_code == 403
    assert body["title"] == "Not included in your plan"
    assert body["code"] == "tier_forbids"
    assert (body["reason"], body["tier"]) == ("format_not_allowed", "free")
    assert "detail" in body and "Odoo" not in body["detail"]
    assert "webp not in png" not in response.text

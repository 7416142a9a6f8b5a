"""CORS: off unless origins are listed; then a listed browser origin may call the client routes
and read the headers they answer with, any other origin gets nothing; a malformed origin stops
the service from starting instead of silently never matching."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from creativeflow.api.app import create_app
from creativeflow.settings import Settings

APP_ORIGIN = "https://app.creativeflow.example"


def client(**changes: Any) -> TestClient:
    settings = Settings(_env_file=None, environment="test", **changes)  # type: ignore[call-arg]
    return TestClient(create_app(settings))  # no lifespan: no connection is opened


def preflight(test_client: TestClient, origin: str) -> Any:
    return test_client.options(
        "/api/v1/generations",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
        },
    )


def test_cors_is_off_by_default() -> None:
    response = client().get("/healthz", headers={"Origin": APP_ORIGIN})
    assert "access-control-allow-origin" not in response.headers


def test_a_listed_origin_may_call_and_read_the_answer_headers() -> None:
    listed = client(cors_allowed_origins_value=f"{APP_ORIGIN}, https://admin.example")
    answer = preflight(listed, APP_ORIGIN)
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == APP_ORIGIN
    assert "POST" in answer.headers["access-control-allow-methods"]
    assert "idempotency-key" in answer.headers["access-control-allow-headers"].lower()
    simple = listed.get("/healthz", headers={"Origin": APP_ORIGIN})
    assert simple.headers["access-control-allow-origin"] == APP_ORIGIN
    exposed = simple.headers["access-control-expose-headers"]
    assert {"Location", "Retry-After", "X-Request-ID"} <= {h.strip() for h in exposed.split(",")}
    assert "access-control-allow-credentials" not in simple.headers


def test_an_origin_not_listed_gets_no_cors_headers() -> None:
    listed = client(cors_allowed_origins_value=APP_ORIGIN)
    answer = preflight(listed, "https://evil.example")
    assert answer.status_code == 400
    assert "access-control-allow-origin" not in answer.headers
    simple = listed.get("/healthz", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in simple.headers


@pytest.mark.parametrize(
    "origin",
    ["https://app.example/", "https://app.example/path", "app.example", "ftp://app.example"],
)
def test_a_malformed_origin_is_refused_at_start(origin: str) -> None:
    with pytest.raises(ValidationError, match="CORS_ALLOWED_ORIGINS"):
        Settings(_env_file=None, environment="test", cors_allowed_origins_value=origin)  # type: ignore[call-arg]


def test_a_listed_origin_may_resume_an_event_stream() -> None:
    listed = client(cors_allowed_origins_value=APP_ORIGIN)
    answer = listed.options(
        "/api/v1/generations/r-1/events",
        headers={
            "Origin": APP_ORIGIN,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization, last-event-id",
        },
    )
    assert answer.status_code == 200
    assert "last-event-id" in answer.headers["access-control-allow-headers"].lower()

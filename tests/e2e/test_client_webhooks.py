"""A client's webhook, end to end: the API served by uvicorn with webhooks on, real PostgreSQL
and RabbitMQ, the Odoo emulator and the n8n simulator, and a receiver over HTTP. What it
receives is held to the tracking table: every event, in order, signed, each once accepted;
through refusals and across two replicas."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from pydantic import SecretStr

from creativeflow.api.app import create_app
from creativeflow.domain.events import public_view
from creativeflow.services.assets import render_events
from creativeflow.webhook_signature import verify
from creativeflow_devstack.stack import serve_in_thread
from tests.e2e.conftest import GATEWAY_SECRET, Stack, free_port, wait_for, wait_for_status

SECRET = "whsec_" + "c2VjcmV0LW9mLXRoZS1jbGllbnQtd2ViaG9va3M="
A_REQUEST = {
    "prompt": "a lighthouse at dawn",
    "format": "png",
    "width": 1024,
    "height": 1024,
    "samples": 2,
}


@dataclass
class Receiver:
    """The client's end: every post it got, and how many it refuses next (503)."""

    url: str
    posts: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    refuse_next: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def accepted(self, request_id: str) -> list[dict[str, Any]]:
        """The events of ``request_id`` it accepted, each checked against the signature."""
        seen = []
        with self.lock:
            posts = list(self.posts)
        for headers, body in posts:
            if headers.get("x-refused"):
                continue
            verify([SECRET], headers, body, now=int(time.time()))
            event = json.loads(body)
            assert headers["webhook-id"] == f"evt_{event['id']}"
            if event["request_id"] == request_id:
                seen.append(event)
        return seen


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with serve_receiver() as state:
        yield state


@contextmanager
def serve_receiver() -> Iterator[Receiver]:
    """A client's webhook receiver on a port of its own, for as long as the block runs."""
    app = FastAPI()
    port = free_port()
    state = Receiver(f"http://127.0.0.1:{port}/hooks/creativeflow")

    @app.post("/hooks/creativeflow")
    async def hook(request: Request) -> Response:
        body = await request.body()
        headers = dict(request.headers)
        with state.lock:
            refuse = state.refuse_next > 0
            if refuse:
                state.refuse_next -= 1
                headers["x-refused"] = "1"
            state.posts.append((headers, body))
        return Response(status_code=503 if refuse else 204)

    with serve_in_thread(app, "127.0.0.1", port, "webhook-receiver"):
        yield state


@dataclass
class Api:
    url: str
    app: Any

    def client(self, user_id: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            headers={"X-Gateway-Secret": GATEWAY_SECRET, "X-User-Id": user_id},
            timeout=30,
        )


@pytest.fixture(scope="module")
def replicas(stack: Stack) -> Iterator[list[Api]]:
    """Two API processes with webhooks on, on the stack's database and broker."""
    settings = stack.settings.model_copy(
        update={
            "client_webhook_secret": SecretStr(SECRET),
            "client_webhook_allow_private_hosts": True,
            "client_webhook_sweep_seconds": 0.2,
            "client_webhook_retry_seconds": 0.2,
        }
    )
    ports = [free_port(), free_port()]
    apps = [create_app(settings) for _ in ports]
    with (
        serve_in_thread(apps[0], "127.0.0.1", ports[0], "api-hooks-1"),
        serve_in_thread(apps[1], "127.0.0.1", ports[1], "api-hooks-2"),
    ):
        yield [Api(f"http://127.0.0.1:{port}", app) for port, app in zip(ports, apps, strict=True)]


def stored(stack: Stack, request_id: str) -> list[dict[str, Any]]:
    """The request's events as a client is sent them: this stack stores no copies, so each
    asset is the provider's URL, said to be so (``url_source``)."""
    events = stack.container().db.run_sync(lambda repo: repo.events_after(request_id, 0, 1000))
    return [json.loads(json.dumps(public_view(e))) for e in render_events(events, {})]


def complete(client: httpx.Client, request_id: str) -> None:
    awaiting = wait_for_status(client, request_id, "AWAITING_SELECTION")
    selected = client.post(
        f"/api/v1/generations/{request_id}/selection",
        json={"sample_id": awaiting["samples"][0]["id"]},
    )
    assert selected.status_code == 202, selected.text
    wait_for_status(client, request_id, "COMPLETED")


def test_every_event_reaches_the_webhook_in_order_signed_and_once(
    stack: Stack, replicas: list[Api], receiver: Receiver
) -> None:
    user = stack.new_user(balance=100)
    with replicas[0].client(user) as client:
        answer = client.post("/api/v1/generations", json={**A_REQUEST, "webhook_url": receiver.url})
        assert answer.status_code == 202, answer.text
        request_id = answer.json()["id"]
        complete(client, request_id)
    everything = stored(stack, request_id)
    wait_for(lambda: len(receiver.accepted(request_id)) >= len(everything))
    got = receiver.accepted(request_id)
    assert got == everything  # the same JSON as the live stream's, every event, in order, once
    assert [e["data"].get("status") for e in got if e["type"] == "status_changed"][-1] == (
        "COMPLETED"
    )


def test_refused_posts_are_retried_and_nothing_is_lost_or_reordered(
    stack: Stack, replicas: list[Api], receiver: Receiver
) -> None:
    user = stack.new_user(balance=100)
    receiver.refuse_next = 3
    with replicas[1].client(user) as client:
        answer = client.post(
            "/api/v1/generations",
            json={
                **A_REQUEST,
                "prompt": "a lighthouse [fail:platform]",
                "webhook_url": receiver.url,
            },
        )
        assert answer.status_code == 202, answer.text
        request_id = answer.json()["id"]
        wait_for_status(client, request_id, "FAILED")
    wait_for(lambda: stack.emulator.balance(user) == 100)
    wait_for(lambda: receiver.accepted(request_id) == stored(stack, request_id))
    types = [e["type"] for e in receiver.accepted(request_id)]
    assert "failed" in types and "credits_refunded" in types
    assert receiver.refuse_next == 0


def test_a_submit_with_a_webhook_is_refused_where_webhooks_are_off_or_the_url_is_bad(
    stack: Stack, replicas: list[Api]
) -> None:
    user = stack.new_user(balance=100)
    with stack.client(user) as off, replicas[0].client(user) as on:
        nowhere = off.post(
            "/api/v1/generations", json={**A_REQUEST, "webhook_url": "https://client.example/h"}
        )
        with_user = on.post(
            "/api/v1/generations", json={**A_REQUEST, "webhook_url": "https://a:b@client.example/"}
        )
        not_a_url = on.post("/api/v1/generations", json={**A_REQUEST, "webhook_url": "ftp://x"})
    for answer in (nowhere, with_user, not_a_url):
        assert answer.status_code == 422, answer.text
        assert answer.json()["errors"][0]["loc"] == ["body", "webhook_url"]
    assert "sends no webhooks" in nowhere.json()["errors"][0]["msg"]
    assert stack.emulator.balance(user) == 100  # nothing charged

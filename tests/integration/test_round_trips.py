"""The round-trip budgets of DESIGN.md section 6, counted (not timed) on the real stack.

- a submit: 1 request to Odoo (the debit, which also checks the tier), 1 publish, at most
  2 committed database transactions;
- a success callback: 0 requests to Odoo, 2 transactions (the change, then the events relay
  publishing its result event right after the answer: docs/decisions.md, "Result events from
  the outbox");
- a selection: 1 request to Odoo, 1 publish, at most 2 transactions;
- a platform-failure callback: exactly 1 request to Odoo (the refund), at most 3 transactions.

What reached Odoo is what the emulator served (``request_count``); transactions are the app's
``TrackingDatabase.counter`` (SQLAlchemy ``commit`` events); publishes are the messages a tap
queue bound to the job exchange received. Each operation runs after a warm-up (the Odoo client
has logged in, connections are open) and after the counters were reset, so logins and
connection set-up are not counted. The Odoo pool has one thread, so that a later operation
cannot land on a thread that has not logged in yet.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pika
import pytest

from creativeflow.api.app import create_app
from creativeflow.settings import Settings
from creativeflow.webhook_signature import signed_headers
from creativeflow_devstack.notification_sink import NotificationStore, create_sink_app
from creativeflow_devstack.odoo_emulator import OdooEmulator
from creativeflow_devstack.stack import serve_in_thread
from tests.e2e.conftest import (
    declare_tap,
    delete_rabbit_names,
    free_port,
    stack_settings,
    wait_for,
)
from tests.integration.rabbit_support import RABBITMQ_URL

GATEWAY_SECRET = "round-trips-gateway-secret"
CALLBACK_SECRET = "round-trips-callback-secret"
A_REQUEST = {
    "prompt": "a lighthouse at dawn, watercolour",
    "format": "png",
    "width": 1024,
    "height": 1024,
    "samples": 3,
}


@dataclass(frozen=True)
class Counts:
    odoo_requests: int
    transactions: int
    publishes: int


@dataclass
class RoundTripStack:
    api_url: str
    settings: Settings
    emulator: OdooEmulator
    app: Any
    tap_queue: str
    user_id: str

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.api_url,
            headers={"X-Gateway-Secret": GATEWAY_SECRET, "X-User-Id": self.user_id},
            timeout=30,
        )

    def tapped(self) -> list[dict[str, Any]]:
        """The job messages published since the last look (taken off the tap queue)."""
        connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
        try:
            channel = connection.channel()
            messages: list[dict[str, Any]] = []
            while True:
                method, _properties, body = channel.basic_get(self.tap_queue, auto_ack=True)
                if method is None:
                    return messages
                messages.append(json.loads(body))
        finally:
            connection.close()

    def counted(self, operation: Callable[[], object]) -> tuple[Counts, list[dict[str, Any]]]:
        """Run ``operation`` with fresh counters; what it cost, and the jobs it published."""
        self.tapped()
        counter = self.app.state.container.db.counter
        self.emulator.reset_counters()
        counter.reset()
        operation()
        # the result events' publish runs right after the answer: counted once it has finished
        relay = self.app.state.container.event_relay
        wait_for(lambda: relay is None or relay.in_flight == 0)
        published = self.tapped()
        counts = Counts(self.emulator.request_count(), counter.transactions, len(published))
        return counts, published

    def submit(self) -> dict[str, Any]:
        with self.client() as client:
            response = client.post("/api/v1/generations", json=A_REQUEST)
        assert response.status_code == 202, response.text
        return response.json()  # type: ignore[no-any-return]

    def select(self, request_id: str, sample_id: str = "s1") -> None:
        with self.client() as client:
            response = client.post(
                f"/api/v1/generations/{request_id}/selection", json={"sample_id": sample_id}
            )
        assert response.status_code == 202, response.text

    def call_back(self, job: dict[str, Any], event: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "event": event,
            "job_id": job["job_id"],
            "request_id": job["request_id"],
        }
        asset = {"url": "https://assets.example/x.png", "width": 1024, "height": 1024}
        if event == "samples_ready":
            samples = int(job["parameters"]["samples"])
            body["samples"] = [{"id": f"s{n}", **asset} for n in range(1, samples + 1)]
        elif event == "final_ready":
            body["asset"] = {"id": "final", **asset}
        else:
            body["error"] = {
                "category": "platform",
                "code": "provider_unavailable",
                "message": "the provider is down",
            }
        raw = json.dumps(body).encode()
        headers = signed_headers(CALLBACK_SECRET, f"msg_{uuid.uuid4().hex}", int(time.time()), raw)
        response = httpx.post(
            f"{self.api_url}/api/v1/callbacks/n8n", content=raw, headers=headers, timeout=30
        )
        assert response.status_code == 200, response.text
        assert response.json()["outcome"] == "applied", response.text
        return response.json()  # type: ignore[no-any-return]

    def submitted_job(self) -> dict[str, Any]:
        """Submit (uncounted) and return the samples job it published."""
        _counts, published = self.counted(self.submit)
        assert len(published) == 1
        return published[0]


@pytest.fixture(scope="module")
def rt(tracking_database_url: str) -> Iterator[RoundTripStack]:
    tag = uuid.uuid4().hex[:10]
    api_port = free_port()
    api_url = f"http://127.0.0.1:{api_port}"
    with OdooEmulator().start() as emulator:
        sink_port = free_port()
        with serve_in_thread(create_sink_app(NotificationStore()), "127.0.0.1", sink_port, "sink"):
            settings = stack_settings(
                tracking_database_url,
                emulator,
                f"http://127.0.0.1:{sink_port}",
                api_url,
                tag,
                prefix="rt",
                odoo_workers=1,  # one thread, logged in once by the warm-up
                n8n_callback_secrets=CALLBACK_SECRET,
                gateway_shared_secret=GATEWAY_SECRET,
            )
            tap_queue = f"rt.{tag}.tap"
            app = create_app(settings)
            try:
                with serve_in_thread(app, "127.0.0.1", api_port, "api"):
                    declare_tap(settings, tap_queue)
                    user_id = f"user-{tag}"
                    emulator.add_account(user_id, tier="pro", balance=10_000)
                    stack = RoundTripStack(api_url, settings, emulator, app, tap_queue, user_id)
                    # warm-up: the Odoo client logs in, the pools open their connections
                    job = stack.submitted_job()
                    stack.call_back(job, "samples_ready")
                    stack.select(job["request_id"])
                    yield stack
            finally:
                delete_rabbit_names(settings, tap_queue)


def test_a_submit_makes_one_odoo_request_one_publish_and_at_most_two_transactions(
    rt: RoundTripStack,
) -> None:
    counts, published = rt.counted(rt.submit)
    assert counts.odoo_requests == 1
    assert rt.emulator.request_count(model_method="creativeflow.credit.service.debit") == 1
    assert counts.publishes == 1
    assert published[0]["stage"] == "samples"
    assert counts.transactions <= 2


def test_a_success_callback_makes_no_odoo_request_and_two_transactions(rt: RoundTripStack) -> None:
    job = rt.submitted_job()
    counts, _ = rt.counted(lambda: rt.call_back(job, "samples_ready"))
    assert counts == Counts(odoo_requests=0, transactions=2, publishes=0)


def test_a_selection_makes_one_odoo_request_one_publish_and_at_most_two_transactions(
    rt: RoundTripStack,
) -> None:
    job = rt.submitted_job()
    rt.call_back(job, "samples_ready")
    counts, published = rt.counted(lambda: rt.select(job["request_id"], "s2"))
    assert counts.odoo_requests == 1
    assert rt.emulator.request_count(model_method="creativeflow.credit.service.debit") == 1
    assert counts.publishes == 1
    assert published[0]["stage"] == "final"
    assert counts.transactions <= 2


def test_a_final_ready_callback_makes_no_odoo_request_and_two_transactions(
    rt: RoundTripStack,
) -> None:
    job = rt.submitted_job()
    rt.call_back(job, "samples_ready")
    _counts, published = rt.counted(lambda: rt.select(job["request_id"]))
    counts, _ = rt.counted(lambda: rt.call_back(published[0], "final_ready"))
    assert counts == Counts(odoo_requests=0, transactions=2, publishes=0)


def test_a_platform_failure_callback_makes_exactly_one_odoo_request_the_refund(
    rt: RoundTripStack,
) -> None:
    job = rt.submitted_job()
    counts, _ = rt.counted(lambda: rt.call_back(job, "failed"))
    assert counts.odoo_requests == 1
    assert rt.emulator.request_count(model_method="creativeflow.credit.service.refund") == 1
    assert counts.publishes == 0
    # the callback's own transaction, the refund's settlement after Odoo answered, and the
    # events relay publishing the failure
    assert counts.transactions <= 3

"""The whole product, for real, in one process: the API served by uvicorn on a free port, real
PostgreSQL and RabbitMQ (names unique to this run, removed afterwards), the Odoo emulator over
its real wire protocol, the n8n simulator consuming the job queue and calling back over HTTP,
and the notification sink."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pika
import pytest

from creativeflow.api.app import create_app
from creativeflow.settings import Settings
from creativeflow_devstack.n8n_simulator import N8nSimulator, SimulatorConfig
from creativeflow_devstack.notification_sink import NotificationStore, create_sink_app
from creativeflow_devstack.odoo_emulator import OdooEmulator
from creativeflow_devstack.stack import serve_in_thread
from tests.integration.rabbit_support import RABBITMQ_URL, delete_events, events_settings

GATEWAY_SECRET = "e2e-gateway-secret"
CALLBACK_SECRET = "e2e-callback-secret"
ADMIN_TOKEN = "e2e-admin-token"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class RunningStack:
    """What every whole-stack fixture offers: the API's clients, users, and Odoo's ledger."""

    api_url: str
    settings: Settings
    emulator: OdooEmulator
    notifications: NotificationStore

    def client(self, user_id: str | None) -> httpx.Client:
        headers = {"X-Gateway-Secret": GATEWAY_SECRET}
        if user_id is not None:
            headers["X-User-Id"] = user_id
        return httpx.Client(base_url=self.api_url, headers=headers, timeout=30)

    def new_user(self, tier: str = "pro", balance: int = 100) -> str:
        user_id = f"user-{uuid.uuid4().hex[:10]}"
        self.emulator.add_account(user_id, tier=tier, balance=balance)
        return user_id

    def ledger_for(self, request_id: str) -> list[dict[str, Any]]:
        return [e for e in self.emulator.ledger() if e["request_id"] == request_id]

    def ledger_of_user(self, user_id: str) -> list[dict[str, Any]]:
        return [e for e in self.emulator.ledger() if e["user_id"] == user_id]


@dataclass
class Stack(RunningStack):
    """The stack with RabbitMQ dispatch and the queue-consuming n8n simulator."""

    tap_queue: str
    simulator: N8nSimulator
    app: Any

    def jobs_published(self) -> list[dict[str, Any]]:
        """Every job message the tap queue saw so far (the simulator consumes its own copy)."""
        return self._tapped(self.tap_queue)

    def cancellations_published(self) -> list[dict[str, Any]]:
        """Every cancellation the service published so far, from the cancellations' tap."""
        return self._tapped(f"{self.tap_queue}.cancellations")

    def events_published(self, request_id: str) -> list[dict[str, Any]]:
        """Every delivery of ``request_id``'s result events so far, from the events' tap (a
        consumer's queue bound with ``generation.#``), with the AMQP properties under
        ``_amqp``."""
        return [
            e for e in _tapped_events(events_tap(self.tap_queue)) if e["request_id"] == request_id
        ]

    @staticmethod
    def _tapped(queue: str) -> list[dict[str, Any]]:
        import json

        connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
        try:
            channel = connection.channel()
            seen = []
            while True:
                method, _properties, body = channel.basic_get(queue, auto_ack=False)
                if method is None:
                    return seen
                seen.append(json.loads(body))
        finally:
            connection.close()  # unacked messages go back to the tap for the next look

    def container(self) -> Any:
        return self.app.state.container


def events_tap(tap_queue: str) -> str:
    return f"{tap_queue}.events"


def _tapped_events(queue: str) -> list[dict[str, Any]]:
    import json

    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    try:
        channel = connection.channel()
        seen = []
        while True:
            method, properties, body = channel.basic_get(queue, auto_ack=False)
            if method is None:
                return seen
            event = json.loads(body)
            event["_amqp"] = {
                "message_id": properties.message_id,
                "delivery_mode": properties.delivery_mode,
                "type": properties.type,
                "routing_key": method.routing_key,
            }
            seen.append(event)
    finally:
        connection.close()  # unacked messages go back to the tap for the next look


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not hold in time")
        time.sleep(0.05)


def wait_for_status(client: httpx.Client, request_id: str, *statuses: str) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        body: dict[str, Any] = client.get(f"/api/v1/generations/{request_id}").json()
        return body if body["status"] in statuses else None

    return wait_for(reached)  # type: ignore[no-any-return]


def stack_settings(
    database_url: str,
    emulator: OdooEmulator,
    sink_url: str,
    api_url: str,
    tag: str,
    prefix: str = "e2e",
    **overrides: Any,
) -> Settings:
    """Settings of a whole stack in tests: broker names unique to ``prefix`` and ``tag``."""
    settings: dict[str, Any] = dict(
        environment="test",
        database_url_value=database_url,
        rabbitmq_url_value=RABBITMQ_URL,
        rabbitmq_exchange=f"{prefix}.{tag}.generation",
        rabbitmq_queue=f"{prefix}.{tag}.jobs",
        rabbitmq_dead_letter_exchange=f"{prefix}.{tag}.dlx",
        rabbitmq_dead_letter_queue=f"{prefix}.{tag}.jobs.dead",
        rabbitmq_cancel_queue=f"{prefix}.{tag}.cancellations",
        odoo_url=emulator.url,
        odoo_db=emulator.database,
        odoo_login="orchestrator",
        odoo_password="orchestrator",
        odoo_max_attempts=2,
        notification_service_url=sink_url,
        n8n_callback_base_url=api_url,
        n8n_callback_secrets=CALLBACK_SECRET,
        gateway_shared_secret=GATEWAY_SECRET,
        admin_token=ADMIN_TOKEN,
        recovery_interval_seconds=0,
        log_format="text",
        **events_settings(f"{prefix}.{tag}"),
        # a test that fails the events exchange on purpose leaves no pause behind for the next
        events_retry_after_seconds=0,
    )
    settings.update(overrides)
    return Settings(_env_file=None, **settings)  # type: ignore[call-arg]


def declare_tap(settings: Settings, tap_queue: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    try:
        channel = connection.channel()
        channel.queue_declare(tap_queue, durable=False, auto_delete=False)
        channel.queue_bind(tap_queue, settings.rabbitmq_exchange, settings.rabbitmq_routing_key)
        cancellations = f"{tap_queue}.cancellations"
        channel.queue_declare(cancellations, durable=False, auto_delete=False)
        channel.queue_bind(
            cancellations, settings.rabbitmq_exchange, settings.rabbitmq_cancel_routing_key
        )
        if settings.events_enabled:
            channel.queue_declare(events_tap(tap_queue), durable=False, auto_delete=False)
            channel.queue_bind(
                events_tap(tap_queue), settings.rabbitmq_events_exchange, "generation.#"
            )
    finally:
        connection.close()


def delete_rabbit_names(settings: Settings, tap_queue: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    try:
        channel = connection.channel()
        for queue in (
            settings.rabbitmq_queue,
            settings.rabbitmq_dead_letter_queue,
            settings.rabbitmq_cancel_queue,
            tap_queue,
            f"{tap_queue}.cancellations",
        ):
            channel.queue_delete(queue)
        for exchange in (settings.rabbitmq_exchange, settings.rabbitmq_dead_letter_exchange):
            channel.exchange_delete(exchange)
    finally:
        connection.close()
    delete_events(settings, events_tap(tap_queue))


@contextmanager
def api_and_simulator(
    settings: Settings, api_port: int, tag: str, prefix: str, **simulator: Any
) -> Iterator[tuple[Any, str, N8nSimulator]]:
    """The API on ``settings`` at ``api_port``, a tap queue on its job exchange and the n8n
    simulator consuming its jobs (``simulator``: more of its options); the broker's names are
    deleted afterwards. Yields the app, the tap queue and the simulator."""
    tap_queue = f"{prefix}.{tag}.tap"
    app = create_app(settings)
    try:
        with serve_in_thread(app, "127.0.0.1", api_port, "api"):
            declare_tap(settings, tap_queue)
            running = N8nSimulator(
                SimulatorConfig(
                    rabbitmq_url=RABBITMQ_URL,
                    secret=CALLBACK_SECRET,
                    queue=settings.rabbitmq_queue,
                    cancel_queue=settings.rabbitmq_cancel_queue,
                    delay=0.05,
                    connection_name=f"{prefix}-simulator-{tag}",
                    **simulator,
                )
            ).start()
            try:
                yield app, tap_queue, running
            finally:
                running.stop()
    finally:
        delete_rabbit_names(settings, tap_queue)


@pytest.fixture(scope="package")
def stack(tracking_database_url: str) -> Iterator[Stack]:
    tag = uuid.uuid4().hex[:10]
    api_port = free_port()
    api_url = f"http://127.0.0.1:{api_port}"
    notifications = NotificationStore()
    with OdooEmulator().start() as emulator:
        sink_port = free_port()
        with serve_in_thread(create_sink_app(notifications), "127.0.0.1", sink_port, "sink"):
            settings = stack_settings(
                tracking_database_url, emulator, f"http://127.0.0.1:{sink_port}", api_url, tag
            )
            with api_and_simulator(settings, api_port, tag, "e2e") as (app, tap, simulator):
                yield Stack(
                    api_url=api_url,
                    settings=settings,
                    emulator=emulator,
                    notifications=notifications,
                    tap_queue=tap,
                    simulator=simulator,
                    app=app,
                )

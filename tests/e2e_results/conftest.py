"""The whole product with n8n's results on the results queue, for real, in one process: the API
served by uvicorn with ``ENABLE_N8N_RESULTS_QUEUE``, real PostgreSQL and RabbitMQ (names unique
to this run), the Odoo emulator over its real wire protocol, the n8n simulator consuming the job
queue and publishing its signed results to the results queue, and the notification sink.

The jobs' callback URLs point at a port nobody listens on: every result that arrives comes by the
queue, as in a deployment with no inbound HTTP from n8n.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pika
import pytest

from creativeflow.settings import Settings
from creativeflow.webhook_signature import signed_headers
from creativeflow_devstack.n8n_simulator import ResultsRoute
from creativeflow_devstack.notification_sink import NotificationStore, create_sink_app
from creativeflow_devstack.odoo_emulator import OdooEmulator
from creativeflow_devstack.stack import serve_in_thread
from tests.e2e.conftest import (
    CALLBACK_SECRET,
    Stack,
    api_and_simulator,
    free_port,
    stack_settings,
)
from tests.integration.rabbit_support import RABBITMQ_URL, channel

NOBODY_LISTENS = "http://127.0.0.1:1"
RETRY_DELAY_SECONDS = 0.3
MAX_ATTEMPTS = 100


class ResultsStack(Stack):
    """The stack, with the results queue's names and a way to publish results as n8n would."""

    @property
    def results_queue(self) -> str:
        return self.settings.rabbitmq_results_queue

    @property
    def dead_letters(self) -> str:
        return f"{self.results_queue}.dead"

    def publish_result(
        self,
        payload: dict[str, Any] | bytes,
        *,
        secret: str = CALLBACK_SECRET,
        webhook_id: str | None = None,
        timestamp: int | None = None,
    ) -> str:
        """What n8n's "Publish result" step sends: the signed body to the exchange, by the
        results routing key, with the Standard Webhooks headers. Its ``webhook-id``."""
        body = (
            payload
            if isinstance(payload, bytes)
            else json.dumps(payload, separators=(",", ":")).encode()
        )
        webhook_id = webhook_id or f"msg_{uuid.uuid4().hex}"
        headers = signed_headers(
            secret, webhook_id, int(time.time()) if timestamp is None else timestamp, body
        )
        headers.pop("content-type")
        with channel() as ch:
            ch.basic_publish(
                self.settings.rabbitmq_exchange,
                self.settings.rabbitmq_results_routing_key,
                body,
                properties=pika.BasicProperties(headers=headers),
            )
        return webhook_id


def results_settings(base: Settings) -> Settings:
    changes: dict[str, Any] = {
        "enable_n8n_results_queue": True,
        "rabbitmq_results_queue": f"{base.rabbitmq_queue}.results",
        "results_retry_delay_seconds": RETRY_DELAY_SECONDS,
        "results_max_attempts": MAX_ATTEMPTS,
        "n8n_callback_base_url": NOBODY_LISTENS,
        # a database outage is noticed quickly
        "database_statement_timeout_ms": 2000,
    }
    return Settings(_env_file=None, **{**base.model_dump(), **changes})  # type: ignore[call-arg]


def delete_results_queues(settings: Settings) -> None:
    with channel() as ch:
        for suffix in ("", ".dead", ".retry"):
            ch.queue_delete(f"{settings.rabbitmq_results_queue}{suffix}")


@pytest.fixture(scope="package")
def stack(tracking_database_url: str) -> Iterator[ResultsStack]:
    tag = uuid.uuid4().hex[:10]
    api_port = free_port()
    api_url = f"http://127.0.0.1:{api_port}"
    notifications = NotificationStore()
    with OdooEmulator().start() as emulator:
        sink_port = free_port()
        with serve_in_thread(create_sink_app(notifications), "127.0.0.1", sink_port, "sink"):
            base = stack_settings(
                tracking_database_url,
                emulator,
                f"http://127.0.0.1:{sink_port}",
                api_url,
                tag,
                prefix="e2e-results",
            )
            settings = results_settings(base)
            route = ResultsRoute(
                rabbitmq_url=RABBITMQ_URL,
                exchange=settings.rabbitmq_exchange,
                routing_key=settings.rabbitmq_results_routing_key,
            )
            try:
                with api_and_simulator(
                    settings, api_port, tag, "e2e-results", results_route=route
                ) as (app, tap, simulator):
                    yield ResultsStack(
                        api_url=api_url,
                        settings=settings,
                        emulator=emulator,
                        notifications=notifications,
                        tap_queue=tap,
                        simulator=simulator,
                        app=app,
                    )
            finally:
                delete_results_queues(settings)

"""The whole product in webhook mode, for real, in one process: the API served by uvicorn on a
free port with ``DISPATCH_MODE=webhook``, real PostgreSQL, the Odoo emulator over its real wire
protocol, the n8n simulator receiving jobs on its webhook and calling back over HTTP, and the
notification sink.

No broker runs here: the settings keep the unique RabbitMQ names of ``tests/e2e`` but point at a
port nobody listens on, so anything that touched RabbitMQ in webhook mode would fail loudly.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import SecretStr

from creativeflow.api.app import create_app
from creativeflow.settings import Settings
from creativeflow_devstack.n8n_simulator import (
    AnswerConfig,
    N8nWebhookSimulator,
    WebhookSimulatorConfig,
)
from creativeflow_devstack.notification_sink import NotificationStore, create_sink_app
from creativeflow_devstack.odoo_emulator import OdooEmulator
from creativeflow_devstack.stack import serve_in_thread
from tests.e2e.conftest import CALLBACK_SECRET, RunningStack, free_port, stack_settings

WEBHOOK_SECRET = "e2e-webhook-secret"
DISPATCH_ATTEMPTS = 2
NO_BROKER_URL = "amqp://guest:guest@127.0.0.1:1/"


@dataclass
class WebhookStack(RunningStack):
    """The stack with dispatch by webhook and the webhook-receiving n8n simulator."""

    simulator: N8nWebhookSimulator
    app: Any

    def jobs_dispatched(self, request_id: str) -> list[dict[str, Any]]:
        """The jobs n8n (the simulator) accepted for one request, in arrival order."""
        return [job for job in self.simulator.jobs() if job["request_id"] == request_id]


def webhook_settings(base: Settings, webhook_url: str) -> Settings:
    """The end-to-end settings of ``tests/e2e``, switched to webhook dispatch."""
    changes: dict[str, Any] = {
        "rabbitmq_url_value": NO_BROKER_URL,
        "dispatch_mode": "webhook",
        "n8n_webhook_url": webhook_url,
        "n8n_webhook_secret": SecretStr(WEBHOOK_SECRET),
        "n8n_webhook_timeout": 5.0,
        "n8n_webhook_max_attempts": DISPATCH_ATTEMPTS,
        # no broker at all: result events stay in the outbox (the default of webhook mode)
        "events_enabled_value": False,
    }
    return Settings(_env_file=None, **{**base.model_dump(), **changes})  # type: ignore[call-arg]


@pytest.fixture(scope="package")
def stack(tracking_database_url: str) -> Iterator[WebhookStack]:
    tag = uuid.uuid4().hex[:10]
    api_port = free_port()
    api_url = f"http://127.0.0.1:{api_port}"
    notifications = NotificationStore()
    simulator = N8nWebhookSimulator(
        WebhookSimulatorConfig(
            job_secret=WEBHOOK_SECRET,
            answering=AnswerConfig(secret=CALLBACK_SECRET, delay=0.05),
        )
    )
    with OdooEmulator().start() as emulator, simulator:
        sink_port = free_port()
        with serve_in_thread(create_sink_app(notifications), "127.0.0.1", sink_port, "sink"):
            base = stack_settings(
                tracking_database_url, emulator, f"http://127.0.0.1:{sink_port}", api_url, tag
            )
            settings = webhook_settings(base, simulator.url)
            app = create_app(settings)
            with serve_in_thread(app, "127.0.0.1", api_port, "api"):
                yield WebhookStack(
                    api_url=api_url,
                    settings=settings,
                    emulator=emulator,
                    notifications=notifications,
                    simulator=simulator,
                    app=app,
                )

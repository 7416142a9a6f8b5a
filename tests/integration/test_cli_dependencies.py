"""The operator commands when something they need does not answer, run as a user runs them:
the last line says which dependency and where, exit code 1, no traceback, no secret."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.cli_support import Outcome, run_cli
from tests.conftest import POSTGRES_ADMIN_URL
from tests.integration.rabbit_support import (
    RABBITMQ_URL,
    delete_topology,
    unique_config,
    unique_events_env,
)


def nobody_listens() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def queues() -> Iterator[dict[str, str]]:
    rabbit = unique_config()
    yield {
        "RABBITMQ_URL": RABBITMQ_URL,
        "RABBITMQ_GENERATION_EXCHANGE": rabbit.exchange,
        "RABBITMQ_N8N_JOB_QUEUE": rabbit.queue,
        "RABBITMQ_DEAD_LETTER_EXCHANGE": rabbit.dead_letter_exchange,
        "RABBITMQ_DEAD_LETTER_QUEUE": rabbit.dead_letter_queue,
        "RABBITMQ_N8N_CANCEL_QUEUE": rabbit.cancel_queue,
        **unique_events_env(rabbit),
    }
    delete_topology(rabbit)


def assert_one_line_failure(outcome: Outcome, command: str, *words: str) -> None:
    assert outcome.code == 1, outcome.err
    last = outcome.err_lines[-1]
    assert last.startswith(f"creativeflow {command}: "), outcome.err
    for word in words:
        assert word in last, last
    # (a library's own log line may carry its traceback as a JSON field; the command prints none)
    assert not any(line.startswith("Traceback") for line in outcome.err_lines), outcome.err


def test_a_missing_tracking_database_names_it_and_the_command_that_creates_it(
    tmp_path: Path, queues: dict[str, str]
) -> None:
    name = f"cf_absent_{uuid.uuid4().hex[:10]}"
    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    outcome = run_cli("sweep", cwd=tmp_path, DATABASE_URL=url, **queues)
    assert_one_line_failure(outcome, "sweep", name, "does not exist", "creativeflow migrate")


def test_postgresql_not_answering_names_the_setting(tmp_path: Path) -> None:
    url = f"postgresql+psycopg2://postgres:pw-not-shown-71@127.0.0.1:{nobody_listens()}/cf"
    outcome = run_cli("migrate", cwd=tmp_path, DATABASE_URL=url)
    assert_one_line_failure(outcome, "migrate", "tracking database", "DATABASE_URL")
    assert "pw-not-shown-71" not in outcome.err


def test_odoo_not_answering_names_odoo_url(
    tmp_path: Path, tracking_database_url: str, queues: dict[str, str]
) -> None:
    odoo = f"http://127.0.0.1:{nobody_listens()}"
    outcome = run_cli(
        "reconcile",
        cwd=tmp_path,
        DATABASE_URL=tracking_database_url,
        ODOO_URL=odoo,
        ODOO_MAX_ATTEMPTS="1",
        **queues,
    )
    assert_one_line_failure(outcome, "reconcile", odoo, "ODOO_URL", "scripts/dev")


def test_a_wrong_odoo_secret_names_the_settings_and_not_the_secret(
    tmp_path: Path, tracking_database_url: str, queues: dict[str, str]
) -> None:
    from creativeflow_devstack.odoo_emulator import OdooEmulator

    with OdooEmulator() as emulator:
        outcome = run_cli(
            "reconcile",
            cwd=tmp_path,
            DATABASE_URL=tracking_database_url,
            ODOO_URL=emulator.url,
            ODOO_API_KEY="wrong-key-not-shown-5e1",
            **queues,
        )
    assert_one_line_failure(outcome, "reconcile", "ODOO_LOGIN", "ODOO_API_KEY")
    assert "wrong-key-not-shown-5e1" not in outcome.err


def test_rabbitmq_not_answering_is_named(tmp_path: Path, tracking_database_url: str) -> None:
    outcome = run_cli(
        "sweep",
        cwd=tmp_path,
        DATABASE_URL=tracking_database_url,
        RABBITMQ_URL=f"amqp://guest:pw-not-shown-9d@127.0.0.1:{nobody_listens()}/%2F",
    )
    assert_one_line_failure(outcome, "sweep", "RabbitMQ", "RABBITMQ_URL")
    assert "pw-not-shown-9d" not in outcome.err

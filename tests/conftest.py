"""Shared fixtures: a throw-away PostgreSQL database per test session (migrated with the real
Alembic migrations, dropped at the end), and the URLs of the local services.

``CREATIVEFLOW_TEST_POSTGRES_URL`` points at a server and a database we may connect to in order
to create and drop the test database (default: the local server, database ``postgres``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg2
import pytest
from sqlalchemy.engine import make_url

from creativeflow.adapters.tracking.migrate import upgrade

POSTGRES_ADMIN_URL = os.environ.get(
    "CREATIVEFLOW_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)


def _admin_connection():  # type: ignore[no-untyped-def]
    url = make_url(POSTGRES_ADMIN_URL)
    connection = psycopg2.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        dbname=url.database,
        connect_timeout=5,
    )
    connection.autocommit = True
    return connection


def create_database(name: str) -> str:
    connection = _admin_connection()
    try:
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
    finally:
        connection.close()
    return make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def drop_database(name: str) -> None:
    connection = _admin_connection()
    try:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        connection.close()


@pytest.fixture(scope="session")
def tracking_database_url() -> Iterator[str]:
    name = f"cf_test_{uuid.uuid4().hex[:12]}"
    url = create_database(name)
    try:
        upgrade(url)
        yield url
    finally:
        drop_database(name)

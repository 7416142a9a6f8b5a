"""Shared fixtures: a throw-away PostgreSQL database per test session (migrated with the real
Alembic migrations, dropped at the end), and the URLs of the local services.

``CREATIVEFLOW_TEST_POSTGRES_URL`` points at a server and a database we may connect to in order
to create and drop the test database (default: the local server, database ``postgres``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from creativeflow.adapters.tracking import databases
from creativeflow.adapters.tracking.migrate import upgrade

POSTGRES_ADMIN_URL = os.environ.get(
    "CREATIVEFLOW_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)


def create_database(name: str) -> str:
    return databases.create_database(POSTGRES_ADMIN_URL, name)


def drop_database(name: str) -> None:
    databases.drop_database(POSTGRES_ADMIN_URL, name)


@pytest.fixture(scope="session")
def tracking_database_url() -> Iterator[str]:
    name = f"cf_test_{uuid.uuid4().hex[:12]}"
    url = create_database(name)
    try:
        upgrade(url)
        yield url
    finally:
        drop_database(name)

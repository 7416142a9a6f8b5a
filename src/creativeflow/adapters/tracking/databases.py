"""Creating and dropping PostgreSQL databases: `creativeflow migrate` creates a missing tracking
database, the local stack resets it, the tests and the benchmarks make their own.

``server_url`` is a SQLAlchemy URL of a database we may connect to in order to run
``CREATE DATABASE`` (usually ``postgres``); the new database lives on the same server.
"""

from __future__ import annotations

from typing import Any

import psycopg2
from sqlalchemy.engine import make_url


def _connect(server_url: str, database: str | None = None) -> Any:
    url = make_url(server_url)
    connection = psycopg2.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        dbname=database or url.database,
        connect_timeout=5,
    )
    connection.autocommit = True  # CREATE and DROP DATABASE refuse to run in a transaction
    return connection


def _execute(server_url: str, statement: str, *params: object, database: str | None = None) -> Any:
    connection = _connect(server_url, database)
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement, params or None)
            return cursor.fetchone() if cursor.description else None
    finally:
        connection.close()


def database_url(server_url: str, name: str) -> str:
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def create_database(server_url: str, name: str) -> str:
    """Create ``name`` on the server; return its URL."""
    _execute(server_url, f'CREATE DATABASE "{name}"')
    return database_url(server_url, name)


def drop_database(server_url: str, name: str) -> None:
    _execute(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def ensure_database(url: str) -> bool:
    """Create the database of ``url`` unless it exists (local development); True if created."""
    name = make_url(url).database
    found = _execute(url, "SELECT 1 FROM pg_database WHERE datname = %s", name, database="postgres")
    if found is None:
        _execute(url, f'CREATE DATABASE "{name}"', database="postgres")
        return True
    return False

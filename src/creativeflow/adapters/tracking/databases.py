"""Creating and dropping PostgreSQL databases: `creativeflow migrate` creates a missing tracking
database, the local stack resets it, the tests and the benchmarks make their own.

``server_url`` is a SQLAlchemy URL of a database we may connect to in order to run
``CREATE DATABASE`` (usually ``postgres``); the new database lives on the same server.
"""

from __future__ import annotations

from typing import Any

import psycopg2
import psycopg2.errors
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


class CannotCreate(RuntimeError):
    """The database is missing and the configured role may not create it; says what to run."""


def ensure_database(url: str) -> bool:
    """Create the database of ``url`` unless it exists; True if created. The server not
    answering, or refusing the role, raises psycopg2's ``OperationalError``."""
    target = make_url(url)
    name = target.database or ""
    try:
        found = _execute(
            url, "SELECT 1 FROM pg_database WHERE datname = %s", name, database="postgres"
        )
    except psycopg2.OperationalError:
        # a role may be kept out of the maintenance database and still own its own: that one
        # answering is enough (and if it does not, its own error says why)
        _execute(url, "SELECT 1")  # raises its own error, not the one above
        return False
    if found is not None:
        return False
    try:
        _execute(url, f'CREATE DATABASE "{name}"', database="postgres")
    except psycopg2.errors.InsufficientPrivilege:
        owner = target.username or "the role of DATABASE_URL"
        raise CannotCreate(
            f"the tracking database {name!r} does not exist on {target.host}:{target.port or 5432}"
            f" and {owner} may not create it: as a role that may, run "
            f"createdb -h {target.host} -p {target.port or 5432} -O {owner} {name} "
            "(or give that role CREATEDB), then creativeflow migrate again"
        ) from None
    return True

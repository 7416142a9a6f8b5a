"""The tracking database: one engine and pool per process, and a unit of work that commits only
when the work function returns, run in a bounded thread pool so psycopg2 never blocks the loop."""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from .repository import TrackingRepository

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class DatabaseConfig:
    url: str = field(repr=False)
    pool_size: int = 10
    max_overflow: int = 5
    statement_timeout_ms: int = 5000
    connect_timeout_s: int = 5


def create_tracking_engine(config: DatabaseConfig) -> Engine:
    engine = create_engine(
        config.url,
        pool_size=config.pool_size,
        max_overflow=config.max_overflow,
        pool_pre_ping=True,
        pool_timeout=config.connect_timeout_s,
        connect_args={
            "connect_timeout": config.connect_timeout_s,
            "options": f"-c statement_timeout={config.statement_timeout_ms}",
            "application_name": "creativeflow-orchestrator",
        },
    )
    return engine


class TransactionCounter:
    """Counts committed transactions and statements, for the round-trip budgets."""

    def __init__(self, engine: Engine) -> None:
        self.transactions = 0
        self.statements = 0
        event.listen(engine, "commit", self._on_commit)
        event.listen(engine, "before_cursor_execute", self._on_statement)

    def _on_commit(self, *_: object) -> None:
        self.transactions += 1

    def _on_statement(self, *_: object) -> None:
        self.statements += 1

    def reset(self) -> None:
        self.transactions = 0
        self.statements = 0


class TrackingDatabase:
    """Runs a function in one transaction: committed if it returns, rolled back if it raises."""

    def __init__(self, config: DatabaseConfig) -> None:
        self.engine = create_tracking_engine(config)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # as many workers as pooled connections: with more, the pool opens overflow connections
        # under load and closes them when they come back, a new PostgreSQL backend (fork and
        # login) every few transactions. Overflow stays for callers outside this pool.
        self._executor = ThreadPoolExecutor(
            max_workers=config.pool_size, thread_name_prefix="tracking-db"
        )
        self.counter = TransactionCounter(self.engine)

    def run_sync(self, work: Callable[[TrackingRepository], T]) -> T:
        with self._sessions.begin() as session:
            return work(TrackingRepository(session))

    async def run(self, work: Callable[[TrackingRepository], T]) -> T:
        loop = asyncio.get_running_loop()
        # the worker thread logs with the caller's context (its correlation id)
        context = contextvars.copy_context()
        return await loop.run_in_executor(
            self._executor, functools.partial(context.run, self.run_sync, work)
        )

    async def ping(self) -> bool:
        def _ping() -> bool:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            return True

        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, _ping)
        except Exception:
            return False

    def session(self) -> Session:
        return self._sessions()

    async def aclose(self) -> None:
        """``close`` off the event loop: it waits for the transactions in flight."""
        await asyncio.to_thread(self.close)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self.engine.dispose()

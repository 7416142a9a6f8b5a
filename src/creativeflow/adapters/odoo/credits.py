"""``AsyncOdooCredits``: the async face of the Odoo credit service that the use cases await.

A bounded thread pool runs the blocking ``OdooClient``; each worker thread builds its own client
the first time it serves a call (neither ``ServerProxy`` nor odoorpc is thread-safe) and keeps it,
so a process logs in at most once per worker thread, never once per call (over JSON-2, never).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import TypeVar

from creativeflow.adapters.odoo.client import OdooClient
from creativeflow.adapters.odoo.config import OdooConfig
from creativeflow.domain.credits import (
    CreditReceipt,
    Entitlements,
    GenerationSpec,
    LedgerEntry,
    LedgerPage,
    Quote,
)
from creativeflow.domain.generated_assets import GeneratedAsset, RecordedAsset

logger = logging.getLogger(__name__)

T = TypeVar("T")


class AsyncOdooCredits:
    """Implements ``services.ports.CreditLedger`` over a pool of per-thread ``OdooClient``s.

    Errors are the client's (see ``creativeflow.adapters.odoo.errors``). ``close`` waits for the
    calls in flight, then closes every client; calls after ``close`` raise ``RuntimeError``.
    """

    def __init__(
        self,
        config: OdooConfig,
        *,
        max_workers: int = 8,
        client_factory: Callable[[OdooConfig], OdooClient] = OdooClient,
    ) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self._config = config
        self._client_factory = client_factory
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="odoo")
        self._local = threading.local()
        self._clients: list[OdooClient] = []
        self._clients_lock = threading.Lock()
        self._closed = False

    @property
    def client_count(self) -> int:
        """How many worker threads have built their client so far (at most ``max_workers``)."""
        with self._clients_lock:
            return len(self._clients)

    async def get_entitlements(self, user_id: str) -> Entitlements:
        return await self._run(lambda client: client.get_entitlements(user_id))

    async def debit(
        self,
        user_id: str,
        request_id: str,
        action: str,
        spec: GenerationSpec,
        correlation_id: str,
    ) -> CreditReceipt:
        return await self._run(
            lambda client: client.debit(user_id, request_id, action, spec, correlation_id)
        )

    async def refund(
        self, request_id: str, action: str, reason: str, correlation_id: str
    ) -> CreditReceipt:
        return await self._run(
            lambda client: client.refund(request_id, action, reason, correlation_id)
        )

    async def ledger_by_requests(self, request_ids: Sequence[str]) -> tuple[LedgerEntry, ...]:
        ids = tuple(request_ids)
        return await self._run(lambda client: client.ledger_by_requests(ids))

    async def ledger_window(
        self, since: datetime, until: datetime, limit: int = 1000, offset: int = 0
    ) -> LedgerPage:
        return await self._run(lambda client: client.ledger_window(since, until, limit, offset))

    async def quote(self, user_id: str, spec: GenerationSpec) -> Quote:
        return await self._run(lambda client: client.quote(user_id, spec))

    async def ledger_for_user(self, user_id: str, limit: int = 20, offset: int = 0) -> LedgerPage:
        return await self._run(lambda client: client.ledger_for_user(user_id, limit, offset))

    async def record_generated_asset(self, asset: GeneratedAsset) -> RecordedAsset:
        return await self._run(lambda client: client.record_generated_asset(asset))

    async def ping(self) -> bool:
        """Readiness: whether Odoo answers ``common.version`` (no login, one try)."""
        return await self._run(lambda client: client.ping())

    async def aclose(self) -> None:
        """``close`` off the event loop: it waits for the calls in flight."""
        await asyncio.to_thread(self.close)

    def close(self) -> None:
        """Wait for the calls in flight, stop the workers, close every client. Idempotent."""
        self._closed = True
        self._executor.shutdown(wait=True, cancel_futures=True)
        with self._clients_lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()

    async def _run(self, call: Callable[[OdooClient], T]) -> T:
        if self._closed:
            raise RuntimeError("AsyncOdooCredits is closed")
        loop = asyncio.get_running_loop()
        # the worker thread logs with the caller's context (its correlation id)
        context = contextvars.copy_context()
        return await loop.run_in_executor(self._executor, context.run, self._on_worker, call)

    def _on_worker(self, call: Callable[[OdooClient], T]) -> T:
        return call(self._thread_client())

    def _thread_client(self) -> OdooClient:
        client: OdooClient | None = getattr(self._local, "client", None)
        if client is None:
            client = self._client_factory(self._config)
            self._local.client = client
            with self._clients_lock:
                self._clients.append(client)
            logger.debug("odoo client built for thread %s", threading.current_thread().name)
        return client

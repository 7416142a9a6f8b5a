"""Metrics around the ports, so the use cases and the adapters need no metrics code.

Each class wraps one adapter and implements the same port (``services.ports``):

- :class:`InstrumentedCreditLedger` times every Odoo call by method and outcome, counts the
  credits Odoo debited and refunded (first applications, not replays), and reports its calls in
  flight against the Odoo worker pool's size.
- :class:`InstrumentedJobPublisher` counts every publish by stage and outcome and times it, and
  reports its publishes in flight against the publisher pool's size.
- :class:`InstrumentedNotifier` counts delivered and failed notifications.
- :class:`InstrumentedEventPublisher` counts every result event's publish by event type and
  outcome.

Anything else (``close``, ``aclose``, ``declare_topology``, ``client_count``, ...) is passed to the
wrapped adapter unchanged, so the composition root can wrap an adapter without changing its
callers.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar

from creativeflow.adapters.rabbitmq.errors import (
    BrokerUnreachable,
    JobNacked,
    JobUnroutable,
    PublishTimedOut,
)
from creativeflow.domain.credits import (
    CreditReceipt,
    Entitlements,
    GenerationSpec,
    LedgerEntry,
    LedgerPage,
    Quote,
)
from creativeflow.domain.errors import (
    CreditOutcomeUnknown,
    CreditServiceUnavailable,
    CreditsRefused,
)
from creativeflow.domain.events import EventMessage
from creativeflow.domain.generated_assets import GeneratedAsset, RecordedAsset
from creativeflow.domain.jobs import JobCancellation, JobMessage
from creativeflow.domain.notifications import Notification
from creativeflow.observability.metrics import (
    Metrics,
    OdooOutcome,
    PoolUsage,
    PublishOutcome,
)
from creativeflow.services.ports import CreditLedger, EventPublisher, JobPublisher, Notifier

_T = TypeVar("_T")


def odoo_outcome(error: BaseException | None) -> OdooOutcome:
    if error is None:
        return OdooOutcome.OK
    if isinstance(error, CreditsRefused):
        return OdooOutcome.REFUSED
    if isinstance(error, CreditOutcomeUnknown):
        return OdooOutcome.UNKNOWN
    if isinstance(error, CreditServiceUnavailable):
        return OdooOutcome.UNAVAILABLE
    return OdooOutcome.ERROR


def publish_outcome(error: BaseException | None) -> PublishOutcome:
    if error is None:
        return PublishOutcome.CONFIRMED
    for kind, outcome in (
        (JobUnroutable, PublishOutcome.RETURNED),
        (JobNacked, PublishOutcome.NACKED),
        (PublishTimedOut, PublishOutcome.TIMED_OUT),
        (BrokerUnreachable, PublishOutcome.UNREACHABLE),
    ):
        if isinstance(error, kind):
            return outcome
    return PublishOutcome.FAILED


class _InFlight:
    """Calls running through one wrapper, for the pool-usage gauge (event-loop thread only)."""

    def __init__(self, pool: str, size: int) -> None:
        self.pool = pool
        self.size = size
        self.count = 0

    def usage(self) -> Iterator[PoolUsage]:
        running = self.count
        yield PoolUsage(self.pool, self.size, min(running, self.size), max(0, running - self.size))


class _Delegating:
    def __getattr__(self, name: str) -> Any:
        # only reached for names this wrapper does not define: close, aclose, adapter extras
        inner = self.__dict__.get("_inner")
        if inner is None:
            raise AttributeError(name)
        return getattr(inner, name)


class InstrumentedCreditLedger(_Delegating):
    def __init__(
        self, inner: CreditLedger, metrics: Metrics, *, pool: str = "odoo", pool_size: int
    ) -> None:
        self._inner: CreditLedger = inner
        self._metrics = metrics
        self._in_flight = _InFlight(pool, pool_size)
        metrics.watch_pools(self._in_flight.usage)

    async def get_entitlements(self, user_id: str) -> Entitlements:
        return await self._timed("get_entitlements", lambda: self._inner.get_entitlements(user_id))

    async def debit(
        self,
        user_id: str,
        request_id: str,
        action: str,
        spec: GenerationSpec,
        correlation_id: str,
    ) -> CreditReceipt:
        receipt = await self._timed(
            "debit",
            lambda: self._inner.debit(user_id, request_id, action, spec, correlation_id),
        )
        if not receipt.replay:
            self._metrics.credits_debited(action, receipt.amount)
        return receipt

    async def refund(
        self, request_id: str, action: str, reason: str, correlation_id: str
    ) -> CreditReceipt:
        receipt = await self._timed(
            "refund", lambda: self._inner.refund(request_id, action, reason, correlation_id)
        )
        if not receipt.replay:
            self._metrics.credits_refunded(action, receipt.amount)
        return receipt

    async def ledger_by_requests(self, request_ids: Sequence[str]) -> tuple[LedgerEntry, ...]:
        return await self._timed(
            "ledger_by_requests", lambda: self._inner.ledger_by_requests(request_ids)
        )

    async def ledger_window(
        self, since: datetime, until: datetime, limit: int = 1000, offset: int = 0
    ) -> LedgerPage:
        return await self._timed(
            "ledger_window", lambda: self._inner.ledger_window(since, until, limit, offset)
        )

    async def quote(self, user_id: str, spec: GenerationSpec) -> Quote:
        return await self._timed("quote", lambda: self._inner.quote(user_id, spec))

    async def ledger_for_user(self, user_id: str, limit: int = 20, offset: int = 0) -> LedgerPage:
        return await self._timed(
            "ledger_for_user", lambda: self._inner.ledger_for_user(user_id, limit, offset)
        )

    async def record_generated_asset(self, asset: GeneratedAsset) -> RecordedAsset:
        return await self._timed(
            "record_generated_asset", lambda: self._inner.record_generated_asset(asset)
        )

    async def ping(self) -> bool:
        return await self._timed("ping", self._inner.ping)

    async def _timed(self, method: str, call: Callable[[], Awaitable[_T]]) -> _T:
        started = time.perf_counter()
        self._in_flight.count += 1
        error: BaseException | None = None
        try:
            return await call()
        except BaseException as raised:
            error = raised
            raise
        finally:
            self._in_flight.count -= 1
            if not isinstance(error, asyncio.CancelledError):
                self._metrics.odoo_call(method, odoo_outcome(error), time.perf_counter() - started)


class InstrumentedJobPublisher(_Delegating):
    def __init__(
        self, inner: JobPublisher, metrics: Metrics, *, pool: str = "publisher", pool_size: int
    ) -> None:
        self._inner: JobPublisher = inner
        self._metrics = metrics
        self._in_flight = _InFlight(pool, pool_size)
        metrics.watch_pools(self._in_flight.usage)

    async def publish(self, job: JobMessage) -> None:
        await self._timed(job.stage.value, self._inner.publish(job))

    async def cancel(self, cancellation: JobCancellation) -> None:
        # counted under the stage label "cancel"
        await self._timed("cancel", self._inner.cancel(cancellation))

    async def _timed(self, stage: str, call: Awaitable[None]) -> None:
        started = time.perf_counter()
        self._in_flight.count += 1
        error: BaseException | None = None
        try:
            await call
        except BaseException as raised:
            error = raised
            raise
        finally:
            self._in_flight.count -= 1
            if not isinstance(error, asyncio.CancelledError):
                self._metrics.publish(stage, publish_outcome(error), time.perf_counter() - started)

    async def check(self) -> bool:
        return await self._inner.check()


class InstrumentedEventPublisher(_Delegating):
    """Counts each publish to the events exchange (called on a database worker thread, inside
    the relay's transaction; Prometheus counters are thread-safe)."""

    def __init__(self, inner: EventPublisher, metrics: Metrics) -> None:
        self._inner: EventPublisher = inner
        self._metrics = metrics

    def publish(self, message: EventMessage) -> None:
        error: BaseException | None = None
        try:
            self._inner.publish(message)
        except BaseException as raised:
            error = raised
            raise
        finally:
            self._metrics.event_published(message.event_type, publish_outcome(error))

    async def aclose(self) -> None:
        await self._inner.aclose()


class InstrumentedNotifier(_Delegating):
    """Counts each notification's final result.

    When the wrapped notifier has ``deliver`` (``HttpNotifier``: one notification with its
    retries, returning whether it got through), this wrapper schedules ``deliver`` itself and
    counts its result; ``drain``/``close``/``aclose`` wait for those sends before closing the
    wrapped notifier. A notifier without ``deliver`` (a test fake) is only passed through.
    """

    def __init__(self, inner: Notifier, metrics: Metrics) -> None:
        self._inner: Notifier = inner
        self._metrics = metrics
        self._in_flight: set[asyncio.Task[None]] = set()

    def send(self, notification: Notification) -> None:
        deliver = getattr(self._inner, "deliver", None)
        if deliver is None or not inspect.iscoroutinefunction(deliver):
            self._inner.send(notification)
            return
        task = asyncio.get_running_loop().create_task(self._deliver(deliver, notification))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _deliver(
        self, deliver: Callable[[Notification], Awaitable[bool]], notification: Notification
    ) -> None:
        try:
            delivered = await deliver(notification)
        except Exception:  # deliver never raises by contract; count it if it ever does
            delivered = False
        if delivered:
            self._metrics.notification_sent()
        else:
            self._metrics.notification_failed()

    async def drain(self) -> None:
        if self._in_flight:
            await asyncio.gather(*list(self._in_flight), return_exceptions=True)
        inner_drain = getattr(self._inner, "drain", None)
        if inner_drain is not None:
            await _maybe_await(inner_drain())

    async def close(self) -> None:
        await self.drain()
        closer = getattr(self._inner, "aclose", None) or getattr(self._inner, "close", None)
        if closer is not None:
            await _maybe_await(closer())

    async def aclose(self) -> None:
        await self.close()


async def _maybe_await(value: object) -> None:
    if inspect.isawaitable(value):
        await value

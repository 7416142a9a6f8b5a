"""The fault-injection rig: the real use cases wired to real PostgreSQL, real RabbitMQ and the
Odoo emulator, with a crash switch at each step of the saga.

A crash is a ``SimulatedCrash`` (a ``BaseException``): it escapes every ``except Exception`` and
every compensation in the service, exactly as if the process had died at that point, leaving the
database, Odoo and the broker as a dead process would. Recovery then runs (with a clock moved past
every deadline) and the invariants are checked over Odoo's ledger and the tracking database.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pika
import pytest
import pytest_asyncio

from creativeflow.adapters.notifications.client import HttpNotifier, NotificationConfig
from creativeflow.adapters.odoo import AsyncOdooCredits
from creativeflow.adapters.rabbitmq import PikaJobPublisher
from creativeflow.adapters.rabbitmq.events import PikaEventPublisher
from creativeflow.adapters.tracking.database import TrackingDatabase
from creativeflow.bootstrap import (
    Adapters,
    Container,
    build_container,
    database_config,
    events_config,
    odoo_config,
    rabbit_config,
)
from creativeflow.clock import SystemClock
from creativeflow.domain.credits import CreditReceipt, GenerationSpec
from creativeflow.domain.events import EventMessage
from creativeflow.domain.jobs import JobMessage
from creativeflow.domain.states import Status
from creativeflow.services.recovery import Recovery
from creativeflow.settings import Settings
from creativeflow_devstack.notification_sink import running_sink
from creativeflow_devstack.odoo_emulator import OdooEmulator
from tests.integration.rabbit_support import (
    RABBITMQ_URL,
    Received,
    channel,
    delete_events,
    drain,
    events_settings,
)


class SimulatedCrash(BaseException):
    """The process died here."""


@dataclass
class CrashSwitch:
    """Which step dies next (once)."""

    point: str | None = None
    fired: list[str] = field(default_factory=list)

    def maybe(self, point: str) -> None:
        if self.point == point:
            self.point = None
            self.fired.append(point)
            raise SimulatedCrash(point)


class CrashingCredits:
    """The real Odoo adapter with crash points around the debit and the refund."""

    def __init__(self, real: AsyncOdooCredits, switch: CrashSwitch) -> None:
        self._real = real
        self._switch = switch

    async def debit(
        self, user_id: str, request_id: str, action: str, spec: GenerationSpec, correlation_id: str
    ) -> CreditReceipt:
        self._switch.maybe("before_debit")
        receipt = await self._real.debit(user_id, request_id, action, spec, correlation_id)
        self._switch.maybe("after_debit_applied")  # Odoo committed; the reply never arrives
        return receipt

    async def refund(
        self, request_id: str, action: str, reason: str, correlation_id: str
    ) -> CreditReceipt:
        self._switch.maybe("before_refund")
        return await self._real.refund(request_id, action, reason, correlation_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class CrashingPublisher:
    def __init__(self, real: PikaJobPublisher, switch: CrashSwitch) -> None:
        self._real = real
        self._switch = switch
        self.published: list[JobMessage] = []

    async def publish(self, job: JobMessage) -> None:
        self._switch.maybe("before_publish")
        await self._real.publish(job)
        self.published.append(job)
        self._switch.maybe("after_publish")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class CrashingEventPublisher:
    """The real events exchange publisher with crash points around the broker's confirm."""

    def __init__(self, real: PikaEventPublisher, switch: CrashSwitch) -> None:
        self._real = real
        self._switch = switch

    def publish(self, message: EventMessage) -> None:
        self._switch.maybe("before_event_publish")  # the change committed; nothing sent
        self._real.publish(message)
        self._switch.maybe("after_event_confirmed")  # confirmed, never marked published

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class LaterClock:
    """Recovery's clock, moved past every deadline."""

    def __init__(self, ahead: timedelta) -> None:
        self.ahead = ahead

    def now(self) -> datetime:
        return datetime.now(UTC) + self.ahead


@dataclass
class Rig:
    container: Container
    emulator: OdooEmulator
    switch: CrashSwitch
    publisher: CrashingPublisher
    settings: Settings
    started: datetime
    events_tap: str

    def events_of(self, request_id: str) -> list[Received]:
        """Every event of ``request_id`` published so far (the tap queue is drained: each
        delivery is seen once)."""
        self._events_seen.extend(drain(self.events_tap))
        return [m for m in self._events_seen if m.json()["request_id"] == request_id]

    @property
    def _events_seen(self) -> list[Received]:
        return _SEEN.setdefault(self.events_tap, [])

    def new_user(self, balance: int = 100, tier: str = "pro") -> str:
        user_id = f"fault-{uuid.uuid4().hex[:10]}"
        self.emulator.add_account(user_id, tier=tier, balance=balance)
        return user_id

    async def recover(self) -> None:
        """Run recovery as an operator would, once everything has had time to go wrong."""
        recovery = Recovery(
            self.container.db,
            self.container.credits,
            self.container.refunder,
            self.container.notifier,
            LaterClock(timedelta(days=1)),
            grace=timedelta(0),
            refund_on_system_failure=self.settings.enable_credit_refund_on_system_failure,
            events=self.container.event_relay,
        )
        await recovery.sweep()
        await recovery.sweep()  # a second pass finds nothing new and changes nothing

    async def assert_invariants(self, user_ids: Sequence[str], opening: dict[str, int]) -> None:
        """Invariants 1, 2 and 4 over Odoo's ledger and the tracking database."""
        report = await self.container.reconciler.reconcile(
            self.started - timedelta(minutes=1), datetime.now(UTC) + timedelta(minutes=1)
        )
        ours = [m for m in report.mismatches if _belongs(m.request_id, self, user_ids)]
        assert ours == [], ours
        ledger = [e for e in self.emulator.ledger() if e["user_id"] in user_ids]
        for user_id in user_ids:
            moved = sum(
                -e["amount"] if e["operation"] == "debit" else e["amount"]
                for e in ledger
                if e["user_id"] == user_id
            )
            assert self.emulator.balance(user_id) == opening[user_id] + moved
        requests = await self.container.db.run(
            lambda repo: [
                r
                for user_id in user_ids
                for r in repo.list_requests(user_id, status=None, limit=100, offset=0)[0]
            ]
        )
        now = datetime.now(UTC)
        stuck = [
            (r.id, r.status)
            for r in requests
            if r.status.is_transient and (r.deadline_at is None or r.deadline_at < now)
        ]
        assert stuck == [], f"requests left in a transient state past their deadline: {stuck}"

    def requests_of(self, user_id: str) -> list[Any]:
        return self.container.db.run_sync(
            lambda repo: repo.list_requests(user_id, status=None, limit=100, offset=0)[0]
        )


_SEEN: dict[str, list[Received]] = {}


def _belongs(request_id: str, rig: Rig, user_ids: Sequence[str]) -> bool:
    request = rig.container.db.run_sync(lambda repo: repo.get_request(request_id))
    return request is not None and request.user_id in user_ids


def _delete_names(settings: Settings) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    try:
        channel = connection.channel()
        for queue in (
            settings.rabbitmq_queue,
            settings.rabbitmq_dead_letter_queue,
            settings.rabbitmq_cancel_queue,
        ):
            channel.queue_delete(queue)
        for exchange in (settings.rabbitmq_exchange, settings.rabbitmq_dead_letter_exchange):
            channel.exchange_delete(exchange)
    finally:
        connection.close()


@pytest.fixture(scope="package")
def emulator() -> Iterator[OdooEmulator]:
    with OdooEmulator().start() as emu:
        yield emu


@pytest.fixture(scope="package")
def sink_url() -> Iterator[str]:
    with running_sink() as sink:
        yield sink.base_url


@pytest.fixture
def rig_settings() -> dict[str, Any]:
    """Settings a test module changes for its rig (override this fixture)."""
    return {}


@pytest_asyncio.fixture
async def rig(
    tracking_database_url: str,
    emulator: OdooEmulator,
    sink_url: str,
    rig_settings: dict[str, Any],
) -> AsyncIterator[Rig]:
    tag = uuid.uuid4().hex[:10]
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment="test",
        database_url_value=tracking_database_url,
        rabbitmq_url_value=RABBITMQ_URL,
        rabbitmq_exchange=f"faults.{tag}.generation",
        rabbitmq_queue=f"faults.{tag}.jobs",
        rabbitmq_dead_letter_exchange=f"faults.{tag}.dlx",
        rabbitmq_dead_letter_queue=f"faults.{tag}.jobs.dead",
        rabbitmq_cancel_queue=f"faults.{tag}.cancellations",
        odoo_url=emulator.url,
        odoo_db=emulator.database,
        odoo_login="orchestrator",
        odoo_password="orchestrator",
        odoo_max_attempts=2,
        notification_service_url=sink_url,
        recovery_interval_seconds=0,
        **events_settings(f"faults.{tag}"),
        **rig_settings,
    )
    switch = CrashSwitch()
    events = PikaEventPublisher(rabbit_config(settings), events_config(settings))
    events.declare_topology()
    events_tap = f"faults.{tag}.events.tap"
    with channel() as ch:
        ch.queue_declare(events_tap, durable=False)
        ch.queue_bind(events_tap, settings.rabbitmq_events_exchange, routing_key="generation.#")
    real_publisher = PikaJobPublisher(
        replace(rabbit_config(settings), connection_name=f"faults-{tag}")
    )
    real_publisher.declare_topology()
    publisher = CrashingPublisher(real_publisher, switch)
    container = build_container(
        settings,
        adapters=Adapters(
            db=TrackingDatabase(database_config(settings)),
            credits=CrashingCredits(AsyncOdooCredits(odoo_config(settings), max_workers=4), switch),  # type: ignore[arg-type]
            publisher=publisher,  # type: ignore[arg-type]
            notifier=HttpNotifier(NotificationConfig(base_url=sink_url, timeout=2, max_attempts=1)),
            clock=SystemClock(),
            events=CrashingEventPublisher(events, switch),  # type: ignore[arg-type]
        ),
    )
    try:
        yield Rig(container, emulator, switch, publisher, settings, datetime.now(UTC), events_tap)
    finally:
        emulator.faults.clear()
        await container.close()
        _delete_names(settings)
        delete_events(settings, events_tap)
        _SEEN.pop(events_tap, None)


TRANSIENT = [s for s in Status if s.is_transient]

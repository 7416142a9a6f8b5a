"""The composition root: the one place that turns settings into adapters and wires the use cases.

Nothing here runs at import time; :func:`build_container` is called by the app's lifespan and by
the command-line tools, and :meth:`Container.close` releases every connection it opened.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from creativeflow.adapters.client_webhooks import (
    ClientWebhookSenderConfig,
    HttpClientWebhookSender,
)
from creativeflow.adapters.notifications.client import HttpNotifier, NotificationConfig
from creativeflow.adapters.odoo import AsyncOdooCredits, OdooConfig
from creativeflow.adapters.rabbitmq import PikaJobPublisher, RabbitConfig
from creativeflow.adapters.rabbitmq.events import EventsConfig, PikaEventPublisher
from creativeflow.adapters.rabbitmq.results import ResultsConfig, ResultsConsumer
from creativeflow.adapters.storage import (
    FetchConfig,
    HttpAssetFetcher,
    S3ObjectStorage,
    StorageConfig,
)
from creativeflow.adapters.tracking.database import DatabaseConfig, TrackingDatabase
from creativeflow.adapters.tracking.listener import EventsListener, ListenerConfig
from creativeflow.adapters.webhook import WebhookConfig, WebhookJobDispatcher
from creativeflow.api.callback_intake import QueuedResultIntake
from creativeflow.clock import SystemClock
from creativeflow.domain.client_webhooks import DeliveryRules
from creativeflow.observability.instrumented import (
    InstrumentedCreditLedger,
    InstrumentedEventPublisher,
    InstrumentedJobPublisher,
    InstrumentedNotifier,
)
from creativeflow.observability.metrics import Metrics
from creativeflow.observability.sources import database_pool, queue_depths, tracking_snapshot
from creativeflow.services.account import CreditAccount, Readiness
from creativeflow.services.assets import AssetConfig, AssetKeeper
from creativeflow.services.callbacks import CallbackService
from creativeflow.services.client_webhooks import ClientWebhookConfig, ClientWebhookDelivery
from creativeflow.services.flow import FlowConfig
from creativeflow.services.generations import GenerationService
from creativeflow.services.live_events import LiveEvents, StreamLimits
from creativeflow.services.outbox import EventRelay
from creativeflow.services.ports import (
    AssetFetcher,
    ClientWebhookSender,
    Clock,
    CreditLedger,
    EventPublisher,
    JobPublisher,
    Notifier,
    ObjectStorage,
)
from creativeflow.services.reconciliation import Reconciler
from creativeflow.services.recovery import Recovery
from creativeflow.services.refunds import Refunder
from creativeflow.settings import Settings

log = logging.getLogger(__name__)


def database_config(settings: Settings) -> DatabaseConfig:
    return DatabaseConfig(
        url=settings.database_url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
        statement_timeout_ms=settings.database_statement_timeout_ms,
    )


def odoo_config(settings: Settings) -> OdooConfig:
    return OdooConfig(
        url=settings.odoo_url,
        database=settings.odoo_db,
        login=settings.odoo_login,
        secret=settings.odoo_secret.get_secret_value(),
        protocol=settings.odoo_protocol,
        connect_timeout=settings.odoo_connect_timeout,
        read_timeout=settings.odoo_read_timeout,
        max_attempts=settings.odoo_max_attempts,
    )


def rabbit_config(settings: Settings) -> RabbitConfig:
    return RabbitConfig(
        url=settings.rabbitmq_url,
        exchange=settings.rabbitmq_exchange,
        queue=settings.rabbitmq_queue,
        routing_key=settings.rabbitmq_routing_key,
        cancel_queue=settings.rabbitmq_cancel_queue,
        cancel_routing_key=settings.rabbitmq_cancel_routing_key,
        dead_letter_exchange=settings.rabbitmq_dead_letter_exchange,
        dead_letter_queue=settings.rabbitmq_dead_letter_queue,
        quorum=settings.rabbitmq_quorum_queue,
        delivery_limit=settings.rabbitmq_job_delivery_limit,
        connect_timeout=settings.rabbitmq_connect_timeout,
        confirm_timeout=settings.rabbitmq_confirm_timeout,
        publish_workers=settings.rabbitmq_publish_workers,
    )


def client_webhook_config(settings: Settings) -> ClientWebhookConfig:
    return ClientWebhookConfig(
        rules=DeliveryRules(
            max_attempts=settings.client_webhook_max_attempts,
            retry_base=timedelta(seconds=settings.client_webhook_retry_seconds),
        ),
        # longer than a batch of posts can take
        lease=timedelta(seconds=max(120.0, settings.client_webhook_timeout * 10 * 2)),
    )


def _webhook_sender(settings: Settings) -> ClientWebhookSender | None:
    if not settings.client_webhooks_enabled:
        return None
    return HttpClientWebhookSender(
        ClientWebhookSenderConfig(
            secret=settings.client_webhook_secret.get_secret_value(),
            timeout=settings.client_webhook_timeout,
            allow_private_hosts=settings.client_webhook_allow_private_hosts,
        )
    )


def events_config(settings: Settings) -> EventsConfig:
    return EventsConfig(
        exchange=settings.rabbitmq_events_exchange,
        unrouted_exchange=settings.rabbitmq_events_unrouted_exchange,
        unrouted_queue=settings.rabbitmq_events_unrouted_queue,
        confirm_timeout=settings.rabbitmq_events_confirm_timeout,
    )


def stream_limits(settings: Settings) -> StreamLimits:
    return StreamLimits(
        max_streams=settings.event_streams_max,
        max_streams_per_user=settings.event_streams_max_per_user,
        keepalive_seconds=settings.event_stream_keepalive_seconds,
        max_lifetime_seconds=settings.event_stream_max_lifetime_seconds,
    )


def results_config(settings: Settings) -> ResultsConfig:
    return ResultsConfig(
        queue=settings.rabbitmq_results_queue,
        routing_key=settings.rabbitmq_results_routing_key,
        prefetch=settings.results_prefetch,
        retry_delay_seconds=settings.results_retry_delay_seconds,
        max_attempts=settings.results_max_attempts,
    )


def storage_config(settings: Settings) -> StorageConfig:
    return StorageConfig(
        endpoint_url=settings.s3_endpoint_url,
        public_endpoint_url=settings.s3_public_endpoint_url or None,
        bucket=settings.s3_bucket,
        access_key_id=settings.s3_access_key_id,
        secret_access_key=settings.s3_secret_access_key.get_secret_value(),
        region=settings.s3_region,
        connect_timeout=settings.s3_connect_timeout,
        read_timeout=settings.s3_read_timeout,
        max_attempts=settings.s3_max_attempts,
    )


def fetch_config(settings: Settings) -> FetchConfig:
    return FetchConfig(
        allowed_hosts=settings.asset_url_hosts,
        max_bytes=settings.asset_max_bytes,
        timeout=settings.asset_fetch_timeout,
    )


def asset_config(settings: Settings) -> AssetConfig:
    return AssetConfig(
        url_ttl=timedelta(seconds=settings.asset_url_ttl_seconds),
        lease=timedelta(seconds=settings.asset_copy_lease_seconds),
        max_attempts=settings.asset_copy_max_attempts,
        retry_base=timedelta(seconds=settings.asset_copy_retry_seconds),
    )


def flow_config(settings: Settings) -> FlowConfig:
    return FlowConfig(
        callback_base_url=settings.n8n_callback_base_url,
        samples_deadline=timedelta(seconds=settings.samples_deadline_seconds),
        final_deadline=timedelta(seconds=settings.final_deadline_seconds),
        dispatch_deadline=timedelta(seconds=settings.dispatch_deadline_seconds),
        standard_model=settings.standard_model,
        advanced_model=settings.advanced_model,
        model_selector=settings.enable_advanced_model_selector,
        refund_on_system_failure=settings.enable_credit_refund_on_system_failure,
    )


@dataclass(frozen=True, slots=True)
class Adapters:
    """One adapter for each port. :func:`build_container` makes the real ones from the settings;
    a test may hand in others (fault-injecting wrappers around the real ones, say)."""

    db: TrackingDatabase
    credits: CreditLedger
    publisher: JobPublisher
    notifier: Notifier
    clock: Clock
    # the events exchange; None: result events stay in the outbox (EVENTS_ENABLED=false)
    events: EventPublisher | None = None
    # the assets' object storage and the download of provider URLs; None: assets not copied
    storage: ObjectStorage | None = None
    fetcher: AssetFetcher | None = None
    # posts to clients' webhooks; None: no webhooks (CLIENT_WEBHOOK_SECRET empty)
    webhook_sender: ClientWebhookSender | None = None


@dataclass(frozen=True, slots=True)
class Container:
    """The wired application: the adapters and every use case, built once by
    :func:`build_container`. The routes reach the use cases through ``api/dependencies.py``."""

    settings: Settings
    db: TrackingDatabase
    credits: CreditLedger
    publisher: JobPublisher
    notifier: Notifier
    clock: Clock
    refunder: Refunder
    generations: GenerationService
    callbacks: CallbackService
    reconciler: Reconciler
    recovery: Recovery
    account: CreditAccount
    readiness: Readiness
    live_events: LiveEvents
    # started by the app's lifespan only: the command-line tools stream nothing
    events_listener: EventsListener
    storage: ObjectStorage | None = None
    fetcher: AssetFetcher | None = None
    assets: AssetKeeper | None = None
    # publishes the result events to the events exchange; None: EVENTS_ENABLED is off
    event_relay: EventRelay | None = None
    # n8n's results queue, consumed when ENABLE_N8N_RESULTS_QUEUE is on (started by the app)
    results_consumer: ResultsConsumer | None = None
    client_webhooks: ClientWebhookDelivery | None = None
    webhook_sender: ClientWebhookSender | None = None

    async def close(self) -> None:
        """Release every connection: the event streams end and their listener stops, the
        results consumer stops taking messages and lets those in hand finish first, copies in
        flight finish (and send their notifications), notifications drain, the database closes
        last."""
        self.live_events.drain()
        await self.events_listener.aclose()
        if self.results_consumer is not None:
            await self.results_consumer.aclose()
        if self.assets is not None:
            await self.assets.aclose()
        if self.client_webhooks is not None:
            await self.client_webhooks.aclose()
        if self.event_relay is not None:
            await self.event_relay.settle()  # the publishes started after commits
        for port in (
            self.notifier,
            self.publisher,
            self.credits,
            self.fetcher,
            self.storage,
            self.webhook_sender,
        ):
            if port is not None:
                await port.aclose()
        if self.event_relay is not None:
            await self.event_relay.publisher.aclose()
        await self.db.aclose()


def _results_consumer(
    settings: Settings, callbacks: CallbackService, metrics: Metrics | None
) -> ResultsConsumer | None:
    if not settings.enable_n8n_results_queue:
        return None
    return ResultsConsumer(
        rabbit_config(settings),
        results_config(settings),
        QueuedResultIntake(settings, callbacks, metrics),
        on_settled=(lambda kind: metrics.result_message_settled(kind.value)) if metrics else None,
    )


def _wire(settings: Settings, adapters: Adapters, metrics: Metrics | None = None) -> Container:
    db, credits, clock = adapters.db, adapters.credits, adapters.clock
    refunder = Refunder(db, credits, clock)
    events = (
        EventRelay(
            db,
            adapters.events,
            clock,
            batch=settings.events_relay_batch,
            pause_after_failure=timedelta(seconds=settings.events_retry_after_seconds),
            concurrency=events_config(settings).publish_workers,
        )
        if adapters.events is not None
        else None
    )
    assets = None
    if adapters.storage is not None and adapters.fetcher is not None:
        assets = AssetKeeper(
            db,
            adapters.fetcher,
            adapters.storage,
            adapters.notifier,
            clock,
            asset_config(settings),
            credits=credits,
            observe=metrics.asset_copy if metrics is not None else None,
        )
    live_events = LiveEvents(db, stream_limits(settings), assets=assets, clock=clock)
    callbacks = CallbackService(
        db,
        refunder,
        adapters.notifier,
        clock,
        refund_on_system_failure=settings.enable_credit_refund_on_system_failure,
        detailed_error_logging=settings.enable_detailed_n8n_error_logging,
        events=events,
        assets=assets,
    )
    results = _results_consumer(settings, callbacks, metrics)
    webhooks = None
    if adapters.webhook_sender is not None:
        webhooks = ClientWebhookDelivery(
            db, adapters.webhook_sender, clock, client_webhook_config(settings), assets=assets
        )

    def on_events(request_id: str) -> None:
        live_events.wake(request_id)
        if webhooks is not None:
            webhooks.kick(request_id)

    return Container(
        settings=settings,
        db=db,
        credits=credits,
        publisher=adapters.publisher,
        notifier=adapters.notifier,
        clock=clock,
        refunder=refunder,
        generations=GenerationService(
            db,
            credits,
            adapters.publisher,
            clock,
            flow_config(settings),
            refunder,
            events,
            assets=assets,
        ),
        callbacks=callbacks,
        reconciler=Reconciler(db, credits),
        recovery=Recovery(
            db,
            credits,
            refunder,
            adapters.notifier,
            clock,
            grace=timedelta(seconds=settings.recovery_grace_seconds),
            refund_on_system_failure=settings.enable_credit_refund_on_system_failure,
            callback_retention=timedelta(hours=settings.received_callback_retention_hours),
            assets=assets,
            events=events,
        ),
        account=CreditAccount(credits),
        readiness=Readiness(db, adapters.publisher, credits, adapters.storage, results),
        results_consumer=results,
        storage=adapters.storage,
        fetcher=adapters.fetcher,
        assets=assets,
        event_relay=events,
        live_events=live_events,
        events_listener=EventsListener(
            ListenerConfig(url=settings.database_url),
            on_wake=on_events,
            on_resync=live_events.wake_all,
        ),
        client_webhooks=webhooks,
        webhook_sender=adapters.webhook_sender,
    )


def build_container(
    settings: Settings, metrics: Metrics | None = None, *, adapters: Adapters | None = None
) -> Container:
    """The one way to a container. Real adapters from the settings, unless ``adapters`` are
    given. The job publisher follows ``DISPATCH_MODE``: RabbitMQ (its topology declared here, so
    a first publish can route) or n8n's webhook (no broker for jobs). Result events go to the
    events exchange (its topology declared here too) unless ``EVENTS_ENABLED`` is off. With
    ``metrics``, the ports report to it and its scrape-time sources are registered."""
    if adapters is not None:
        return _wire(settings, adapters, metrics)
    publisher: JobPublisher
    if settings.dispatch_mode == "webhook":
        publisher = WebhookJobDispatcher(
            WebhookConfig(
                url=settings.n8n_webhook_url,
                secret=settings.n8n_webhook_secret.get_secret_value(),
                timeout=settings.n8n_webhook_timeout,
                max_attempts=settings.n8n_webhook_max_attempts,
            )
        )
    else:
        rabbit = PikaJobPublisher(rabbit_config(settings))
        rabbit.declare_topology()
        publisher = rabbit
    events: EventPublisher | None = None
    if settings.events_enabled:
        event_publisher = PikaEventPublisher(rabbit_config(settings), events_config(settings))
        event_publisher.declare_topology()
        events = event_publisher
    db = TrackingDatabase(database_config(settings))
    credits: CreditLedger = AsyncOdooCredits(
        odoo_config(settings), max_workers=settings.odoo_workers
    )
    notifier: Notifier = HttpNotifier(
        NotificationConfig(
            base_url=settings.notification_service_url,
            timeout=settings.notification_timeout,
            max_attempts=settings.notification_max_attempts,
        )
    )
    if metrics is not None:
        credits = InstrumentedCreditLedger(credits, metrics, pool_size=settings.odoo_workers)
        publisher = InstrumentedJobPublisher(
            publisher, metrics, pool_size=settings.rabbitmq_publish_workers
        )
        notifier = InstrumentedNotifier(notifier, metrics)
        if events is not None:
            events = InstrumentedEventPublisher(events, metrics)
        metrics.watch_tracking(tracking_snapshot(db, include_outbox=settings.events_enabled))
        metrics.watch_pools(
            database_pool(db, capacity=settings.database_pool_size + settings.database_max_overflow)
        )
        if settings.dispatch_mode != "webhook" or settings.enable_n8n_results_queue:
            metrics.watch_queues(
                queue_depths(
                    rabbit_config(settings),
                    jobs=settings.dispatch_mode != "webhook",
                    results=results_config(settings) if settings.enable_n8n_results_queue else None,
                )
            )
    storage: ObjectStorage | None = None
    fetcher: AssetFetcher | None = None
    if settings.storage_enabled:
        storage = S3ObjectStorage(storage_config(settings))
        fetcher = HttpAssetFetcher(fetch_config(settings))
    container = _wire(
        settings,
        Adapters(
            db=db,
            credits=credits,
            publisher=publisher,
            notifier=notifier,
            clock=SystemClock(),
            events=events,
            storage=storage,
            fetcher=fetcher,
            webhook_sender=_webhook_sender(settings),
        ),
        metrics,
    )
    if metrics is not None:
        live, listener = container.live_events, container.events_listener
        metrics.watch_event_streams(
            open_streams=lambda: live.open_streams, listening=lambda: listener.connected
        )
    return container

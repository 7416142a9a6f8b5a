"""The metrics module: one registry per app, bounded labels, scrape-time sources that cannot break
a scrape, the HTTP middleware's route templates, and the wrappers around the ports."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import prometheus_client
import pytest
from fastapi import APIRouter, FastAPI
from prometheus_client.parser import text_string_to_metric_families

from creativeflow.adapters.rabbitmq.errors import (
    BrokerUnreachable,
    JobNacked,
    JobUnroutable,
    PublishTimedOut,
)
from creativeflow.api.app import create_app
from creativeflow.api.middleware import BodySizeLimitMiddleware
from creativeflow.domain.credits import CreditReceipt, GenerationSpec
from creativeflow.domain.errors import (
    CreditOutcomeUnknown,
    CreditServiceUnavailable,
    CreditsRefused,
    DispatchUnavailable,
)
from creativeflow.domain.generated_assets import GeneratedAsset
from creativeflow.domain.jobs import CallbackUrls, JobMessage, Stage
from creativeflow.domain.notifications import Notification, NotificationType
from creativeflow.observability.http import HttpMetricsMiddleware
from creativeflow.observability.instrumented import (
    InstrumentedCreditLedger,
    InstrumentedJobPublisher,
    InstrumentedNotifier,
    odoo_outcome,
    publish_outcome,
)
from creativeflow.observability.metrics import (
    CallbackOutcome,
    Metrics,
    OdooOutcome,
    PoolUsage,
    PublishOutcome,
    QueueDepth,
    TrackingSnapshot,
    action_kind,
)
from creativeflow.settings import Settings
from creativeflow_devstack.fake_credits import FakeCredits

HTTP = "creativeflow_http_request_duration_seconds"


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def scrape(metrics: Metrics) -> dict[str, list[tuple[dict[str, str], float]]]:
    text = prometheus_client.generate_latest(metrics.registry).decode()
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return found


# --- the registry ----------------------------------------------------------------------------


def test_each_metrics_object_has_its_own_registry_and_the_global_one_stays_untouched() -> None:
    first, second = Metrics(), Metrics()
    first.callback_outcome("applied")
    assert value(first, "creativeflow_callbacks_total", outcome="applied") == 1
    assert value(second, "creativeflow_callbacks_total", outcome="applied") == 0
    global_names = {m.name for m in prometheus_client.REGISTRY.collect()}
    assert not any(name.startswith("creativeflow") for name in global_names)


def test_two_apps_in_one_process_do_not_collide() -> None:
    settings = Settings(_env_file=None, environment="test")  # type: ignore[call-arg]
    one, two = create_app(settings), create_app(settings)
    assert one.state.metrics is not two.state.metrics
    assert one.state.metrics.registry is not two.state.metrics.registry


def test_build_info_carries_the_version() -> None:
    assert value(Metrics(version="1.2.3"), "creativeflow_build_info", version="1.2.3") == 1


# --- bounded labels --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "kind"),
    [
        ("samples", "samples"),
        ("final", "final"),
        ("final-2", "final"),
        ("regeneration-1", "regeneration"),
        ("regeneration-42", "regeneration"),
        ("something-else", "other"),
    ],
)
def test_actions_are_reduced_to_their_kind(action: str, kind: str) -> None:
    assert action_kind(action).value == kind


def test_credit_counters_sum_amounts_by_action_kind() -> None:
    metrics = Metrics()
    metrics.credits_debited("samples", 6)
    metrics.credits_debited("regeneration-1", 2)
    metrics.credits_debited("regeneration-2", 3)
    metrics.credits_refunded("final-2", 10)
    metrics.credits_debited("samples", 0)  # nothing moved: no series change
    assert value(metrics, "creativeflow_credits_debited_total", action="samples") == 6
    assert value(metrics, "creativeflow_credits_debited_total", action="regeneration") == 5
    assert value(metrics, "creativeflow_credits_refunded_total", action="final") == 10


def test_every_callback_outcome_is_exposed_from_the_start_and_unknown_ones_are_refused() -> None:
    metrics = Metrics()
    for outcome in CallbackOutcome:
        assert value(metrics, "creativeflow_callbacks_total", outcome=outcome.value) == 0
    metrics.callback_outcome(CallbackOutcome.REJECTED)
    metrics.callback_outcome("late")
    assert value(metrics, "creativeflow_callbacks_total", outcome="rejected") == 1
    assert value(metrics, "creativeflow_callbacks_total", outcome="late") == 1
    with pytest.raises(ValueError):
        metrics.callback_outcome("weird")


def test_publishes_notifications_odoo_calls_and_dependencies_are_recorded() -> None:
    metrics = Metrics()
    metrics.publish("samples", PublishOutcome.CONFIRMED, 0.01)
    metrics.publish("final", "returned")
    metrics.notification_sent()
    metrics.notification_failed()
    metrics.odoo_call("debit", OdooOutcome.UNKNOWN, 0.2)
    metrics.dependency_checked("odoo", False)
    publishes = "creativeflow_job_publishes_total"
    assert value(metrics, publishes, stage="samples", outcome="confirmed") == 1
    assert value(metrics, publishes, stage="final", outcome="returned") == 1
    publish_count = "creativeflow_job_publish_duration_seconds_count"
    assert value(metrics, publish_count, outcome="confirmed") == 1
    assert value(metrics, "creativeflow_notifications_total", outcome="sent") == 1
    assert value(metrics, "creativeflow_notifications_total", outcome="failed") == 1
    odoo_count = "creativeflow_odoo_call_duration_seconds_count"
    assert value(metrics, odoo_count, method="debit", outcome="unknown") == 1
    assert value(metrics, "creativeflow_dependency_up", dependency="odoo") == 0


# --- scrape-time sources ---------------------------------------------------------------------


def test_tracking_snapshot_gives_every_status_the_oldest_age_and_the_refund_backlog() -> None:
    metrics = Metrics()
    metrics.watch_tracking(
        lambda: TrackingSnapshot(
            requests_by_status={"PROCESSING_SAMPLES": 3, "FAILED": 1},
            oldest_transient_age_seconds=42.5,
            unsettled_operations={("refund", "pending"): 2},
        )
    )
    found = scrape(metrics)
    by_status = {labels["status"]: v for labels, v in found["creativeflow_requests"]}
    assert by_status["PROCESSING_SAMPLES"] == 3
    assert by_status["FAILED"] == 1
    assert by_status["AWAITING_SELECTION"] == 0  # every status, even when the query left it out
    assert found["creativeflow_oldest_transient_request_age_seconds"] == [({}, 42.5)]
    backlog = {
        (labels["kind"], labels["status"]): v
        for labels, v in found["creativeflow_credit_operations_unsettled"]
    }
    assert backlog[("refund", "pending")] == 2
    assert backlog[("debit", "unknown")] == 0
    assert ({"source": "tracking"}, 1.0) in found["creativeflow_metrics_source_up"]


def test_the_oldest_job_awaiting_its_callback_is_a_gauge_and_zero_when_none() -> None:
    metrics = Metrics(tracking_cache_seconds=0)
    snapshots = iter(
        [
            TrackingSnapshot({}, None, oldest_awaiting_callback_seconds=630.0),
            TrackingSnapshot({}, None),
        ]
    )
    metrics.watch_tracking(lambda: next(snapshots))
    assert value(metrics, "creativeflow_oldest_job_awaiting_callback_seconds") == 630.0
    assert value(metrics, "creativeflow_oldest_job_awaiting_callback_seconds") == 0


def test_the_events_outbox_is_shown_while_result_events_are_on_and_hidden_while_off() -> None:
    """Off, the events wait on purpose: an outbox that only ages would raise the alert."""
    metrics = Metrics(tracking_cache_seconds=0)
    snapshots = iter(
        [
            TrackingSnapshot({}, None, events_pending=3, oldest_pending_event_seconds=42.0),
            TrackingSnapshot({}, None, events_pending=0),
            TrackingSnapshot({}, None),
        ]
    )
    metrics.watch_tracking(lambda: next(snapshots))
    first = scrape(metrics)
    assert first["creativeflow_events_pending"] == [({}, 3.0)]
    assert first["creativeflow_events_oldest_pending_seconds"] == [({}, 42.0)]
    second = scrape(metrics)
    assert second["creativeflow_events_oldest_pending_seconds"] == [({}, 0.0)]
    off = scrape(metrics)
    assert "creativeflow_events_pending" not in off
    assert "creativeflow_events_oldest_pending_seconds" not in off


def test_an_event_publish_is_counted_by_type_and_outcome() -> None:
    metrics = Metrics()
    metrics.event_published("AIGenerationFailed", "confirmed")
    metrics.event_published("AIGenerationFailed", "returned")
    metrics.event_published("AIGenerationFailed", "returned")
    found = dict(
        (labels["outcome"], count)
        for labels, count in scrape(metrics)["creativeflow_event_publishes_total"]
    )
    assert found == {"confirmed": 1.0, "returned": 2.0}


def test_no_transient_request_is_age_zero() -> None:
    metrics = Metrics()
    metrics.watch_tracking(lambda: TrackingSnapshot({}, None))
    assert value(metrics, "creativeflow_oldest_transient_request_age_seconds") == 0


def test_a_failing_source_is_reported_and_the_scrape_still_succeeds() -> None:
    metrics = Metrics(tracking_cache_seconds=0)

    def broken() -> TrackingSnapshot:
        raise RuntimeError("database down")

    def broken_queues() -> list[QueueDepth]:
        raise OSError("broker down")

    metrics.watch_tracking(broken)
    metrics.watch_queues(broken_queues)
    metrics.callback_outcome("applied")
    found = scrape(metrics)
    assert ({"source": "tracking"}, 0.0) in found["creativeflow_metrics_source_up"]
    assert ({"source": "queues"}, 0.0) in found["creativeflow_metrics_source_up"]
    assert "creativeflow_requests" not in found
    assert ({"outcome": "applied"}, 1.0) in found["creativeflow_callbacks_total"]


def test_the_tracking_query_is_cached_between_close_scrapes() -> None:
    calls = []

    def snapshot() -> TrackingSnapshot:
        calls.append(1)
        return TrackingSnapshot({"PENDING": len(calls)}, None)

    metrics = Metrics(tracking_cache_seconds=60)
    metrics.watch_tracking(snapshot)
    scrape(metrics)
    scrape(metrics)
    assert len(calls) == 1
    uncached = Metrics(tracking_cache_seconds=0)
    uncached.watch_tracking(snapshot)
    scrape(uncached)
    scrape(uncached)
    assert len(calls) == 3


def test_queue_depths_and_pool_usage_are_read_on_scrape() -> None:
    metrics = Metrics()
    depth = {"dead": 0}
    metrics.watch_queues(
        lambda: [
            QueueDepth("jobs", "creativeflow.n8n.jobs", 5, consumers=2),
            QueueDepth("dead_letter", "creativeflow.n8n.jobs.dead", depth["dead"]),
        ]
    )
    metrics.watch_pools(lambda: [PoolUsage("database", 15, 15, 4)])
    metrics.watch_pools(lambda: [PoolUsage("odoo", 16, 2)])
    dead = {"role": "dead_letter", "queue": "creativeflow.n8n.jobs.dead"}
    assert value(metrics, "creativeflow_queue_messages", **dead) == 0
    depth["dead"] = 7
    assert value(metrics, "creativeflow_queue_messages", **dead) == 7
    jobs = {"role": "jobs", "queue": "creativeflow.n8n.jobs"}
    assert value(metrics, "creativeflow_queue_consumers", **jobs) == 2
    assert value(metrics, "creativeflow_pool_waiting", pool="database") == 4
    assert value(metrics, "creativeflow_pool_in_use", pool="odoo") == 2
    assert value(metrics, "creativeflow_pool_size", pool="odoo") == 16


def test_sample_names_cover_every_family_with_its_suffixes() -> None:
    names = Metrics().sample_names()
    for expected in (
        f"{HTTP}_bucket",
        f"{HTTP}_count",
        "creativeflow_odoo_call_duration_seconds_bucket",
        "creativeflow_job_publishes_total",
        "creativeflow_credits_debited_total",
        "creativeflow_credits_refunded_total",
        "creativeflow_callbacks_total",
        "creativeflow_notifications_total",
        "creativeflow_requests",
        "creativeflow_oldest_transient_request_age_seconds",
        "creativeflow_credit_operations_unsettled",
        "creativeflow_queue_messages",
        "creativeflow_pool_in_use",
        "creativeflow_pool_waiting",
        "creativeflow_dependency_up",
    ):
        assert expected in names, expected


# --- the HTTP middleware ---------------------------------------------------------------------


def _small_app(metrics: Metrics) -> FastAPI:
    app = FastAPI()
    items = APIRouter(prefix="/api/v1/items")

    @items.get("/{item_id}")
    async def get_item(item_id: str) -> dict[str, str]:
        return {"id": item_id}

    @items.post("/{item_id}/boom")
    async def boom(item_id: str) -> None:
        raise RuntimeError("a bug")

    @app.get("/plain/{name}")
    async def plain(name: str) -> dict[str, str]:
        return {"name": name}

    app.include_router(items)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=16)
    app.add_middleware(HttpMetricsMiddleware, metrics=metrics)
    return app


def _call(app: FastAPI, method: str, path: str, **kwargs: object) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.request(method, path, **kwargs)  # type: ignore[arg-type]

    return asyncio.run(go())


def test_requests_are_labelled_by_route_template_not_by_raw_path() -> None:
    metrics = Metrics()
    app = _small_app(metrics)
    for item in ("a1", "b2", "c3"):
        assert _call(app, "GET", f"/api/v1/items/{item}").status_code == 200
    assert _call(app, "GET", "/plain/x").status_code == 200
    item_route = "/api/v1/items/{item_id}"
    assert value(metrics, f"{HTTP}_count", method="GET", route=item_route, status="200") == 3
    assert value(metrics, f"{HTTP}_count", method="GET", route="/plain/{name}", status="200") == 1
    routes = {labels["route"] for labels, _ in scrape(metrics)[f"{HTTP}_count"]}
    assert routes == {"/api/v1/items/{item_id}", "/plain/{name}"}


def test_unknown_paths_wrong_methods_errors_and_refusals_keep_bounded_labels() -> None:
    metrics = Metrics()
    app = _small_app(metrics)
    assert _call(app, "GET", "/no/such/path/123").status_code == 404
    assert _call(app, "DELETE", "/api/v1/items/a1").status_code == 405
    assert _call(app, "POST", "/api/v1/items/a1/boom").status_code == 500
    assert _call(app, "POST", "/plain/x", content=b"x" * 100).status_code == 413
    assert _call(app, "BREW", "/plain/x").status_code == 405
    assert value(metrics, f"{HTTP}_count", method="GET", route="unmatched", status="404") == 1
    item_route = "/api/v1/items/{item_id}"
    assert value(metrics, f"{HTTP}_count", method="DELETE", route=item_route, status="405") == 1
    boom_route = "/api/v1/items/{item_id}/boom"
    assert value(metrics, f"{HTTP}_count", method="POST", route=boom_route, status="500") == 1
    # refused before routing; a top-level route is still found by matching
    assert value(metrics, f"{HTTP}_count", method="POST", route="/plain/{name}", status="413") == 1
    # methods are a closed set too
    assert value(metrics, f"{HTTP}_count", method="OTHER", route="/plain/{name}", status="405") == 1


def test_the_app_serves_its_own_registry_at_metrics() -> None:
    settings = Settings(_env_file=None, environment="test")  # type: ignore[call-arg]
    app = create_app(settings)
    assert _call(app, "GET", "/healthz").status_code == 200
    response = _call(app, "GET", "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    healthz = [
        s
        for s in families[HTTP].samples
        if s.name == f"{HTTP}_count" and s.labels["route"] == "/healthz"
    ]
    assert healthz and healthz[0].value == 1
    openmetrics = _call(app, "GET", "/metrics", headers={"Accept": "application/openmetrics-text"})
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")


# --- the wrappers around the ports -----------------------------------------------------------


def _receipt(action: str, amount: int, *, replay: bool = False) -> CreditReceipt:
    return CreditReceipt(
        entry_id=1,
        user_id="u",
        request_id="r",
        action=action,
        amount=amount,
        balance_after=0,
        replay=replay,
    )


class _Ledger:
    def __init__(self) -> None:
        self.next_error: Exception | None = None
        self.replay = False
        self.closed = False

    async def debit(
        self, user_id: str, request_id: str, action: str, spec: object, cid: str
    ) -> CreditReceipt:
        if self.next_error is not None:
            error, self.next_error = self.next_error, None
            raise error
        return _receipt(action, 6, replay=self.replay)

    async def refund(self, request_id: str, action: str, reason: str, cid: str) -> CreditReceipt:
        return _receipt(action, 6, replay=self.replay)

    async def ping(self) -> bool:
        return True

    def close(self) -> None:
        self.closed = True


SPEC = GenerationSpec(format="png", width=64, height=64, samples=3)


def test_the_odoo_wrapper_times_calls_and_counts_first_applications_only() -> None:
    metrics = Metrics()
    inner = _Ledger()
    ledger = InstrumentedCreditLedger(inner, metrics, pool_size=4)  # type: ignore[arg-type]

    async def go() -> None:
        await ledger.debit("u", "r", "samples", SPEC, "c")
        inner.replay = True
        await ledger.debit("u", "r", "samples", SPEC, "c")  # a replay moved nothing
        inner.replay = False
        await ledger.refund("r", "samples", "platform_failure", "c")
        inner.next_error = CreditsRefused("insufficient_credits", required=6, balance=1)
        with pytest.raises(CreditsRefused):
            await ledger.debit("u", "r2", "samples", SPEC, "c")
        inner.next_error = CreditOutcomeUnknown("lost reply")
        with pytest.raises(CreditOutcomeUnknown):
            await ledger.debit("u", "r3", "samples", SPEC, "c")
        assert await ledger.ping()

    asyncio.run(go())
    count = "creativeflow_odoo_call_duration_seconds_count"
    assert value(metrics, count, method="debit", outcome="ok") == 2
    assert value(metrics, count, method="debit", outcome="refused") == 1
    assert value(metrics, count, method="debit", outcome="unknown") == 1
    assert value(metrics, count, method="refund", outcome="ok") == 1
    assert value(metrics, count, method="ping", outcome="ok") == 1
    assert value(metrics, "creativeflow_credits_debited_total", action="samples") == 6
    assert value(metrics, "creativeflow_credits_refunded_total", action="samples") == 6
    assert value(metrics, "creativeflow_pool_size", pool="odoo") == 4
    assert value(metrics, "creativeflow_pool_in_use", pool="odoo") == 0
    ledger.close()  # passed through to the adapter
    assert inner.closed


def test_the_odoo_wrapper_times_the_recording_of_a_generated_asset() -> None:
    metrics = Metrics()
    fake = FakeCredits()
    fake.add_account("u", tier="pro", balance=100)
    ledger = InstrumentedCreditLedger(fake, metrics, pool_size=4)
    asset = GeneratedAsset("r", "u", "k.png", "png", 64, 64, "0" * 64, 10, ("final",))

    async def go() -> None:
        with pytest.raises(CreditsRefused):
            await ledger.record_generated_asset(asset)  # nothing paid for it yet
        await ledger.debit("u", "r", "final", SPEC, "c")
        recorded = await ledger.record_generated_asset(asset)
        assert recorded.created is True

    asyncio.run(go())
    count = "creativeflow_odoo_call_duration_seconds_count"
    assert value(metrics, count, method="record_generated_asset", outcome="refused") == 1
    assert value(metrics, count, method="record_generated_asset", outcome="ok") == 1


def test_pool_usage_counts_calls_in_flight_and_those_beyond_the_pool_size() -> None:
    metrics = Metrics()
    release = asyncio.Event()

    class SlowLedger(_Ledger):
        async def ping(self) -> bool:
            await release.wait()
            return True

    ledger = InstrumentedCreditLedger(SlowLedger(), metrics, pool_size=2)  # type: ignore[arg-type]

    async def go() -> tuple[float | None, float | None]:
        tasks = [asyncio.create_task(ledger.ping()) for _ in range(5)]
        await asyncio.sleep(0)
        seen = (
            value(metrics, "creativeflow_pool_in_use", pool="odoo"),
            value(metrics, "creativeflow_pool_waiting", pool="odoo"),
        )
        release.set()
        await asyncio.gather(*tasks)
        return seen

    assert asyncio.run(go()) == (2, 3)
    assert value(metrics, "creativeflow_pool_in_use", pool="odoo") == 0


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (None, OdooOutcome.OK),
        (CreditsRefused("tier_forbids", reason="x", tier="free"), OdooOutcome.REFUSED),
        (CreditOutcomeUnknown("x"), OdooOutcome.UNKNOWN),
        (CreditServiceUnavailable("x"), OdooOutcome.UNAVAILABLE),
        (RuntimeError("closed"), OdooOutcome.ERROR),
    ],
)
def test_odoo_outcomes(error: Exception | None, outcome: OdooOutcome) -> None:
    assert odoo_outcome(error) is outcome


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (None, PublishOutcome.CONFIRMED),
        (JobUnroutable("no queue"), PublishOutcome.RETURNED),
        (JobNacked("nack"), PublishOutcome.NACKED),
        (PublishTimedOut("slow"), PublishOutcome.TIMED_OUT),
        (BrokerUnreachable("down"), PublishOutcome.UNREACHABLE),
        (DispatchUnavailable("other"), PublishOutcome.FAILED),
    ],
)
def test_publish_outcomes(error: Exception | None, outcome: PublishOutcome) -> None:
    assert publish_outcome(error) is outcome


def _job(stage: Stage) -> JobMessage:
    now = datetime.now(UTC)
    return JobMessage(
        job_id="j",
        request_id="r",
        user_id="u",
        stage=stage,
        attempt=1,
        action="samples",
        model="m",
        correlation_id="c",
        created_at=now,
        deadline_at=now,
        parameters={},
        callbacks=CallbackUrls("g", "s", "f", "e"),
    )


def test_the_publisher_wrapper_counts_confirms_and_each_kind_of_failure() -> None:
    from tests.unit.fakes import RecordingPublisher

    metrics = Metrics()
    inner = RecordingPublisher()
    publisher = InstrumentedJobPublisher(inner, metrics, pool_size=8)

    async def go() -> None:
        await publisher.publish(_job(Stage.SAMPLES))
        inner.fail_next(1, JobUnroutable("no queue bound"))
        with pytest.raises(JobUnroutable):
            await publisher.publish(_job(Stage.FINAL))
        inner.fail_next(1)
        with pytest.raises(BrokerUnreachable):
            await publisher.publish(_job(Stage.SAMPLES))
        assert await publisher.check()

    asyncio.run(go())
    total = "creativeflow_job_publishes_total"
    assert value(metrics, total, stage="samples", outcome="confirmed") == 1
    assert value(metrics, total, stage="final", outcome="returned") == 1
    assert value(metrics, total, stage="samples", outcome="unreachable") == 1
    assert publisher.job_ids == ["j"]  # adapter extras pass through


def _notification() -> Notification:
    return Notification(
        user_id="u",
        type=NotificationType.COMPLETED,
        request_id="r",
        title="t",
        message="m",
        correlation_id="c",
    )


def test_the_notifier_wrapper_counts_delivered_and_failed_and_drains_before_closing() -> None:
    metrics = Metrics()

    class Delivering:
        def __init__(self) -> None:
            self.results: Iterator[bool] = iter([True, False, True])
            self.closed = False

        async def deliver(self, notification: Notification) -> bool:
            await asyncio.sleep(0.01)
            return next(self.results)

        def send(self, notification: Notification) -> None:  # pragma: no cover - not used
            raise AssertionError("the wrapper delivers itself")

        async def close(self) -> None:
            self.closed = True

    inner = Delivering()
    notifier = InstrumentedNotifier(inner, metrics)  # type: ignore[arg-type]

    async def go() -> None:
        for _ in range(3):
            notifier.send(_notification())
        await notifier.close()

    asyncio.run(go())
    assert value(metrics, "creativeflow_notifications_total", outcome="sent") == 2
    assert value(metrics, "creativeflow_notifications_total", outcome="failed") == 1
    assert inner.closed


def test_a_notifier_without_deliver_is_passed_through() -> None:
    sent: list[Notification] = []

    class Plain:
        def send(self, notification: Notification) -> None:
            sent.append(notification)

    notifier = InstrumentedNotifier(Plain(), Metrics())
    notifier.send(_notification())
    assert len(sent) == 1

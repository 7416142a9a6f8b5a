"""The service's Prometheus metrics: one :class:`Metrics` object per app, with its own registry.

Nothing is registered at import time and no global registry is touched: the app factory builds a
``Metrics`` (``app.state.metrics``), ``GET /metrics`` renders its registry, and the code that
observes something calls one of its small typed methods::

    metrics.http_request(method, route_template, status, seconds)   # the ASGI middleware
    metrics.odoo_call(method, outcome, seconds)                      # every Odoo RPC
    metrics.publish(stage, outcome, seconds)                         # every job publish
    metrics.credits_debited(action, amount) / credits_refunded(...)  # Odoo applied a movement
    metrics.callback_outcome(outcome)                                # every n8n callback
    metrics.result_message_settled(settlement)                       # every results message
    metrics.notification_sent() / notification_failed()             # every notification
    metrics.dependency_checked(name, ok)                             # readiness probes
    metrics.asset_copy(role, outcome)                                # every copy to storage

Values that live elsewhere (rows in PostgreSQL, messages in RabbitMQ, busy worker threads) are
read when Prometheus scrapes, through callbacks registered with :meth:`Metrics.watch_tracking`,
:meth:`Metrics.watch_queues`, :meth:`Metrics.watch_pools` and
:meth:`Metrics.watch_event_streams`. A callback that fails is logged and
reported as ``creativeflow_metrics_source_up{source=...} 0``; the scrape still succeeds.

Label values are closed sets (an action is reduced to ``samples``/``final``/``regeneration``, an
HTTP path to its route template) so the number of series stays bounded whatever the traffic.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from creativeflow.domain.actions import Action
from creativeflow.domain.states import Status

log = logging.getLogger(__name__)

PREFIX = "creativeflow"

# Seconds. HTTP answers range from a cached read (ms) to a submit that waits for Odoo and a
# publisher confirm (tens to hundreds of ms); Odoo calls cost tens of ms, a login about a second.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
ODOO_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
PUBLISH_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)

UNMATCHED_ROUTE = "unmatched"

_T = TypeVar("_T")


class OdooOutcome(enum.StrEnum):
    OK = "ok"  # Odoo answered with a result
    REFUSED = "refused"  # a business refusal (insufficient credits, tier forbids, ...)
    UNAVAILABLE = "unavailable"  # not reached, or refused us (nothing was applied)
    UNKNOWN = "unknown"  # sent, no answer: a debit or refund may have been applied
    ERROR = "error"  # anything else (a bug, a closed client)


class PublishOutcome(enum.StrEnum):
    CONFIRMED = "confirmed"  # the broker confirmed and routed the job
    RETURNED = "returned"  # confirmed but returned: no queue bound (mandatory=True)
    NACKED = "nacked"  # the broker refused it
    TIMED_OUT = "timed_out"  # no confirmation in time (it may still arrive)
    UNREACHABLE = "unreachable"  # no connection, or lost again after one reconnect
    FAILED = "failed"  # any other failure


class CallbackOutcome(enum.StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    LATE = "late"
    REPLAYED = "replayed"  # a webhook-id received before: 409
    REJECTED = "rejected"  # signature, timestamp or headers refused: 401


class CreditAction(enum.StrEnum):
    SAMPLES = "samples"
    FINAL = "final"
    REGENERATION = "regeneration"
    OTHER = "other"


def action_kind(action: str) -> CreditAction:
    """``final-2`` is a final, ``regeneration-7`` a regeneration: one series per kind."""
    if not Action.is_valid(action):
        return CreditAction.OTHER
    return CreditAction(Action.parse(action).kind.value)


# --- what the scrape-time callbacks return -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrackingSnapshot:
    """What the tracking database holds right now.

    ``requests_by_status``: number of requests per status name (missing statuses count 0; the
    lead's query may leave out terminal states, which only grow). ``oldest_transient_age_seconds``:
    how long the request that has been longest in a transient state (PENDING, VALIDATING_CREDITS,
    PUBLISHING_TO_QUEUE, PROCESSING_SAMPLES, PROCESSING_FINAL) has been in it, ``None`` when
    there is none. ``unsettled_operations``: credit operations left ``pending`` or ``unknown``,
    keyed by (kind, status), e.g. ``("refund", "pending")``: the refund backlog.
    """

    requests_by_status: Mapping[str, int]
    oldest_transient_age_seconds: float | None
    unsettled_operations: Mapping[tuple[str, str], int] = field(default_factory=dict)
    # how long the oldest job n8n was given (published, no callback yet) has waited; None: none
    oldest_awaiting_callback_seconds: float | None = None
    # result events in the outbox not yet confirmed by the events exchange, and the oldest's age;
    # None: result events are off, and the outbox is not shown
    events_pending: int | None = None
    oldest_pending_event_seconds: float | None = None
    # copies of assets to object storage not done yet (running or due for a retry)
    pending_asset_copies: int = 0


@dataclass(frozen=True, slots=True)
class QueueDepth:
    """Messages waiting in one queue; ``role`` is ``jobs`` or ``dead_letter``."""

    role: str
    queue: str
    messages: int
    consumers: int | None = None


@dataclass(frozen=True, slots=True)
class PoolUsage:
    """A bounded worker pool: its size, the calls running on it and those waiting for a worker."""

    pool: str
    size: int
    in_use: int
    waiting: int = 0


TrackingSnapshotSource = Callable[[], TrackingSnapshot]
QueueDepthSource = Callable[[], Iterable[QueueDepth]]
PoolUsageSource = Callable[[], Iterable[PoolUsage]]


# --- the metrics object ------------------------------------------------------------------------


class Metrics:
    """Every metric of one app, registered in its own :class:`CollectorRegistry`."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        version: str = "unknown",
        tracking_cache_seconds: float = 5.0,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self._http = Histogram(
            f"{PREFIX}_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template and status.",
            ("method", "route", "status"),
            buckets=HTTP_BUCKETS,
            registry=r,
        )
        self._odoo = Histogram(
            f"{PREFIX}_odoo_call_duration_seconds",
            "Time of one Odoo RPC as the service awaited it (queueing for a worker, retries and "
            "re-login included), by method and outcome.",
            ("method", "outcome"),
            buckets=ODOO_BUCKETS,
            registry=r,
        )
        self._publishes = Counter(
            f"{PREFIX}_job_publishes",
            "Job publishes to RabbitMQ by stage and outcome (confirmed, returned, nacked, "
            "timed_out, unreachable, failed).",
            ("stage", "outcome"),
            registry=r,
        )
        self._publish_seconds = Histogram(
            f"{PREFIX}_job_publish_duration_seconds",
            "Time from handing a job to the publisher to the broker's confirm or the failure.",
            ("outcome",),
            buckets=PUBLISH_BUCKETS,
            registry=r,
        )
        self._event_publishes = Counter(
            f"{PREFIX}_event_publishes",
            "Result events published to the events exchange, by event type and outcome "
            "(confirmed, returned, nacked, timed_out, unreachable, failed).",
            ("event_type", "outcome"),
            registry=r,
        )
        self._debited = Counter(
            f"{PREFIX}_credits_debited",
            "Credits Odoo debited (first application only, not replays), by action kind.",
            ("action",),
            registry=r,
        )
        self._refunded = Counter(
            f"{PREFIX}_credits_refunded",
            "Credits Odoo refunded (first application only, not replays), by action kind.",
            ("action",),
            registry=r,
        )
        self._callbacks = Counter(
            f"{PREFIX}_callbacks",
            "n8n callbacks by outcome (applied, duplicate, late, replayed, rejected).",
            ("outcome",),
            registry=r,
        )
        self._results = Counter(
            f"{PREFIX}_results_queue_messages",
            "Messages of n8n's results queue by how they were settled (acked, retried later, "
            "dead_lettered).",
            ("settlement",),
            registry=r,
        )
        self._notifications = Counter(
            f"{PREFIX}_notifications",
            "Notifications to the Notification Service by outcome (sent, failed).",
            ("outcome",),
            registry=r,
        )
        self._asset_copies = Counter(
            f"{PREFIX}_asset_copies",
            "Attempts to copy an asset to object storage, by role (sample, final) and outcome "
            "(stored, retrying: failed and due again, failed: given up).",
            ("role", "outcome"),
            registry=r,
        )
        self._dependency_up = Gauge(
            f"{PREFIX}_dependency_up",
            "1 when the last readiness check reached the dependency, 0 when it did not.",
            ("dependency",),
            registry=r,
        )
        self._event_streams = Gauge(
            f"{PREFIX}_event_streams_open",
            "Live event streams (Server-Sent Events) this process has open.",
            registry=r,
        )
        self._events_listener = Gauge(
            f"{PREFIX}_events_listener_up",
            "1 while this process's LISTEN connection for the event streams' wake-ups is up.",
            registry=r,
        )
        build = Gauge(f"{PREFIX}_build_info", "The running version.", ("version",), registry=r)
        build.labels(version=version).set(1)
        for outcome in CallbackOutcome:  # every outcome shows, at 0, from the first scrape
            self._callbacks.labels(outcome=outcome.value)
        for name in ("sent", "failed"):
            self._notifications.labels(outcome=name)
        for name in ("acked", "retried", "dead_lettered"):
            self._results.labels(settlement=name)
        for role in ("sample", "final"):
            for name in ("stored", "retrying", "failed"):
                self._asset_copies.labels(role=role, outcome=name)
        self._sources = _ScrapeSources(tracking_cache_seconds)
        r.register(self._sources)

    # --- events ---------------------------------------------------------------------------------

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self._http.labels(method=method, route=route, status=str(status)).observe(seconds)

    def odoo_call(self, method: str, outcome: OdooOutcome | str, seconds: float) -> None:
        self._odoo.labels(method=method, outcome=str(outcome)).observe(seconds)

    def publish(
        self, stage: str, outcome: PublishOutcome | str, seconds: float | None = None
    ) -> None:
        self._publishes.labels(stage=stage, outcome=str(outcome)).inc()
        if seconds is not None:
            self._publish_seconds.labels(outcome=str(outcome)).observe(seconds)

    def event_published(self, event_type: str, outcome: PublishOutcome | str) -> None:
        self._event_publishes.labels(event_type=event_type, outcome=str(outcome)).inc()

    def credits_debited(self, action: str, amount: int) -> None:
        if amount > 0:
            self._debited.labels(action=action_kind(action).value).inc(amount)

    def credits_refunded(self, action: str, amount: int) -> None:
        if amount > 0:
            self._refunded.labels(action=action_kind(action).value).inc(amount)

    def callback_outcome(self, outcome: CallbackOutcome | str) -> None:
        self._callbacks.labels(outcome=CallbackOutcome(str(outcome)).value).inc()

    def result_message_settled(self, settlement: str) -> None:
        self._results.labels(settlement=settlement).inc()

    def notification_sent(self) -> None:
        self._notifications.labels(outcome="sent").inc()

    def notification_failed(self) -> None:
        self._notifications.labels(outcome="failed").inc()

    def asset_copy(self, role: str, outcome: str) -> None:
        self._asset_copies.labels(role=role, outcome=outcome).inc()

    def dependency_checked(self, dependency: str, ok: bool) -> None:
        self._dependency_up.labels(dependency=dependency).set(1 if ok else 0)

    # --- scrape-time sources --------------------------------------------------------------------

    def watch_tracking(self, source: TrackingSnapshotSource) -> None:
        """Read request counts, the oldest transient request and the refund backlog at scrape
        time (cached for ``tracking_cache_seconds``, so several scrapers cost one query)."""
        self._sources.tracking = source

    def watch_queues(self, source: QueueDepthSource) -> None:
        """Read the job and dead-letter queue depths at scrape time."""
        self._sources.queues = source

    def watch_event_streams(
        self, *, open_streams: Callable[[], int], listening: Callable[[], bool]
    ) -> None:
        """Read the open event streams and the listener's connection at scrape time."""
        self._event_streams.set_function(lambda: float(open_streams()))
        self._events_listener.set_function(lambda: 1.0 if listening() else 0.0)

    def watch_pools(self, source: PoolUsageSource) -> None:
        """Add a source of worker-pool usage (several may be added: Odoo, publisher, database)."""
        self._sources.pools.append(source)

    # --- introspection --------------------------------------------------------------------------

    def sample_names(self) -> frozenset[str]:
        """Every series name this object can expose (``_bucket``, ``_total``, ... included)."""
        names: set[str] = set()
        for family in self.registry.collect():
            names.update(_sample_names(family.name, family.type))
        for family in self._sources.describe():
            names.update(_sample_names(family.name, family.type))
        return frozenset(names)


def _sample_names(name: str, kind: str) -> Iterator[str]:
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "summary": ("_count", "_sum", "_created", ""),
        "gauge": ("",),
        "info": ("_info",),
    }.get(kind, ("",))
    for suffix in suffixes:
        yield name + suffix


class _ScrapeSources(Collector):
    """The families read through callbacks when Prometheus scrapes."""

    def __init__(self, tracking_cache_seconds: float) -> None:
        self.tracking: TrackingSnapshotSource | None = None
        self.queues: QueueDepthSource | None = None
        self.pools: list[PoolUsageSource] = []
        self._cache_seconds = tracking_cache_seconds
        self._cached: tuple[float, TrackingSnapshot] | None = None
        self._lock = threading.Lock()

    def describe(self) -> list[Metric]:
        return [
            _requests_family(),
            _oldest_family(),
            _awaiting_callback_family(),
            _unsettled_family(),
            *_outbox_families(),
            _pending_copies_family(),
            _queue_family(),
            _queue_consumers_family(),
            *_pool_families(),
            _source_up_family(),
        ]

    def collect(self) -> Iterator[Metric]:
        up = _source_up_family()
        if self.tracking is not None:
            snapshot = self._tracking_snapshot()
            up.add_metric(["tracking"], 0 if snapshot is None else 1)
            if snapshot is not None:
                yield from _tracking_families(snapshot)
        if self.queues is not None:
            depths = _read_all("queues", self.queues)
            up.add_metric(["queues"], 0 if depths is None else 1)
            if depths is not None:
                yield from _queue_families(depths)
        if self.pools:
            usages: list[PoolUsage] = []
            all_ok = True
            for source in self.pools:
                got = _read_all("pools", source)
                if got is None:
                    all_ok = False
                else:
                    usages.extend(got)
            up.add_metric(["pools"], 1 if all_ok else 0)
            yield from _pool_metrics(usages)
        yield up

    def _tracking_snapshot(self) -> TrackingSnapshot | None:
        assert self.tracking is not None
        with self._lock:  # concurrent scrapes share one query
            now = time.monotonic()
            if self._cached is not None and now - self._cached[0] < self._cache_seconds:
                return self._cached[1]
            snapshot = _read_snapshot(self.tracking)
            self._cached = (now, snapshot) if snapshot is not None else None
            return snapshot


def _read_snapshot(read: TrackingSnapshotSource) -> TrackingSnapshot | None:
    try:
        return read()
    except Exception:  # a metrics source must never break the scrape
        log.warning("metrics source tracking failed", exc_info=True)
        return None


def _read_all(source: str, read: Callable[[], Iterable[_T]]) -> list[_T] | None:
    try:
        return list(read())
    except Exception:  # a metrics source must never break the scrape
        log.warning("metrics source %s failed", source, exc_info=True)
        return None


def _requests_family() -> GaugeMetricFamily:
    return GaugeMetricFamily(
        f"{PREFIX}_requests",
        "Generation requests in the tracking database, by status.",
        labels=["status"],
    )


def _oldest_family() -> GaugeMetricFamily:
    return GaugeMetricFamily(
        f"{PREFIX}_oldest_transient_request_age_seconds",
        "How long the request longest in a transient state has been in it (0 when none).",
    )


def _awaiting_callback_family() -> GaugeMetricFamily:
    return GaugeMetricFamily(
        f"{PREFIX}_oldest_job_awaiting_callback_seconds",
        "How long the oldest job dispatched to n8n has waited for its callback (0 when none): "
        "long before its deadline, a sign n8n cannot call back (a wrong secret, no workflow).",
    )


def _unsettled_family() -> GaugeMetricFamily:
    return GaugeMetricFamily(
        f"{PREFIX}_credit_operations_unsettled",
        "Debits and refunds whose outcome is still pending or unknown (recovery settles them).",
        labels=["kind", "status"],
    )


def _outbox_families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
    return (
        GaugeMetricFamily(
            f"{PREFIX}_events_pending",
            "Result events written with their change and not yet confirmed by the events "
            "exchange (the outbox; recovery publishes them).",
        ),
        GaugeMetricFamily(
            f"{PREFIX}_events_oldest_pending_seconds",
            "Age of the oldest result event still waiting to be published (0 when none).",
        ),
    )


def _pending_copies_family() -> GaugeMetricFamily:
    return GaugeMetricFamily(
        f"{PREFIX}_asset_copies_pending",
        "Copies of assets to object storage not done yet (running, or due for a retry).",
    )


def _queue_family() -> GaugeMetricFamily:
    return GaugeMetricFamily(
        f"{PREFIX}_queue_messages",
        "Messages ready in a RabbitMQ queue (the job queue and the dead-letter queue).",
        labels=["role", "queue"],
    )


def _queue_consumers_family() -> GaugeMetricFamily:
    return GaugeMetricFamily(
        f"{PREFIX}_queue_consumers",
        "Consumers attached to a RabbitMQ queue.",
        labels=["role", "queue"],
    )


def _pool_families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
    return (
        GaugeMetricFamily(f"{PREFIX}_pool_size", "Workers of a bounded pool.", labels=["pool"]),
        GaugeMetricFamily(
            f"{PREFIX}_pool_in_use", "Calls running on a pool's workers.", labels=["pool"]
        ),
        GaugeMetricFamily(
            f"{PREFIX}_pool_waiting",
            "Calls waiting for a free worker (the pool is saturated while this is above 0).",
            labels=["pool"],
        ),
    )


def _source_up_family() -> GaugeMetricFamily:
    return GaugeMetricFamily(
        f"{PREFIX}_metrics_source_up",
        "1 when a scrape-time source (tracking, queues, pools) could be read.",
        labels=["source"],
    )


def _tracking_families(snapshot: TrackingSnapshot) -> Iterator[Metric]:
    requests = _requests_family()
    counts = dict.fromkeys((s.value for s in Status), 0)
    counts.update({str(k): int(v) for k, v in snapshot.requests_by_status.items()})
    for status, count in sorted(counts.items()):
        requests.add_metric([status], count)
    yield requests
    oldest = _oldest_family()
    oldest.add_metric([], max(0.0, snapshot.oldest_transient_age_seconds or 0.0))
    yield oldest
    waiting = _awaiting_callback_family()
    waiting.add_metric([], max(0.0, snapshot.oldest_awaiting_callback_seconds or 0.0))
    yield waiting
    unsettled = _unsettled_family()
    keys = {(k, s) for k in ("debit", "refund") for s in ("pending", "unknown")}
    keys.update(snapshot.unsettled_operations)
    for kind, status in sorted(keys):
        unsettled.add_metric([kind, status], snapshot.unsettled_operations.get((kind, status), 0))
    yield unsettled
    if snapshot.events_pending is not None:
        pending, oldest_pending = _outbox_families()
        pending.add_metric([], snapshot.events_pending)
        yield pending
        oldest_pending.add_metric([], max(0.0, snapshot.oldest_pending_event_seconds or 0.0))
        yield oldest_pending
    copies = _pending_copies_family()
    copies.add_metric([], snapshot.pending_asset_copies)
    yield copies


def _queue_families(depths: Sequence[QueueDepth]) -> Iterator[Metric]:
    messages = _queue_family()
    consumers = _queue_consumers_family()
    for depth in depths:
        messages.add_metric([depth.role, depth.queue], depth.messages)
        if depth.consumers is not None:
            consumers.add_metric([depth.role, depth.queue], depth.consumers)
    yield messages
    yield consumers


def _pool_metrics(usages: Sequence[PoolUsage]) -> Iterator[Metric]:
    size, in_use, waiting = _pool_families()
    for usage in usages:
        size.add_metric([usage.pool], usage.size)
        in_use.add_metric([usage.pool], usage.in_use)
        waiting.add_metric([usage.pool], usage.waiting)
    yield size
    yield in_use
    yield waiting

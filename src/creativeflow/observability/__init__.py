"""Operations: Prometheus metrics (one registry per app), the HTTP timing middleware, and
metric-reporting wrappers around the ports."""

from creativeflow.observability.metrics import (
    CallbackOutcome,
    CreditAction,
    Metrics,
    OdooOutcome,
    PoolUsage,
    PoolUsageSource,
    PublishOutcome,
    QueueDepth,
    QueueDepthSource,
    TrackingSnapshot,
    TrackingSnapshotSource,
    action_kind,
)

__all__ = [
    "CallbackOutcome",
    "CreditAction",
    "Metrics",
    "OdooOutcome",
    "PoolUsage",
    "PoolUsageSource",
    "PublishOutcome",
    "QueueDepth",
    "QueueDepthSource",
    "TrackingSnapshot",
    "TrackingSnapshotSource",
    "action_kind",
]

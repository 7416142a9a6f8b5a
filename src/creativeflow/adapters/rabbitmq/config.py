"""Settings of the RabbitMQ job publisher, and the pika connection parameters built from them."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import pika


def redact_url(url: str) -> str:
    """The URL with its password replaced, safe to log or show."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal lost its brackets in hostname
        host = f"[{host}]"
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username or ''}:***@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@dataclass(frozen=True, slots=True, repr=False)
class RabbitConfig:
    """Where to publish jobs and how patiently.

    ``confirm_timeout`` bounds one whole ``publish`` call (waiting for a pool thread, reconnecting,
    and the broker's confirmation); ``connect_timeout`` bounds opening one connection.
    """

    url: str
    exchange: str = "creativeflow.generation"
    queue: str = "creativeflow.n8n.jobs"
    routing_key: str = "generation.job"
    # cancellations of jobs n8n may be working on; kept no longer than any job can run
    cancel_queue: str = "creativeflow.n8n.cancellations"
    cancel_routing_key: str = "generation.cancel"
    cancel_ttl_seconds: int = 86400
    dead_letter_exchange: str = "creativeflow.generation.dlx"
    dead_letter_queue: str = "creativeflow.n8n.jobs.dead"
    quorum: bool = True
    # quorum queues: deliveries of one message before the broker dead-letters it
    delivery_limit: int = 5
    connect_timeout: float = 5.0
    confirm_timeout: float = 10.0
    heartbeat: int = 30
    publish_workers: int = 4
    connection_name: str = "creativeflow-orchestrator"

    def __post_init__(self) -> None:
        if self.publish_workers < 1:
            raise ValueError("publish_workers must be at least 1")
        if self.connect_timeout <= 0 or self.confirm_timeout <= 0:
            raise ValueError("connect_timeout and confirm_timeout must be positive")

    @property
    def safe_url(self) -> str:
        return redact_url(self.url)

    def __repr__(self) -> str:
        return (
            f"RabbitConfig(url={self.safe_url!r}, exchange={self.exchange!r}, "
            f"queue={self.queue!r}, routing_key={self.routing_key!r}, "
            f"cancel_queue={self.cancel_queue!r}, cancel_routing_key={self.cancel_routing_key!r}, "
            f"dead_letter_exchange={self.dead_letter_exchange!r}, "
            f"dead_letter_queue={self.dead_letter_queue!r}, quorum={self.quorum!r}, "
            f"connect_timeout={self.connect_timeout!r}, confirm_timeout={self.confirm_timeout!r}, "
            f"heartbeat={self.heartbeat!r}, publish_workers={self.publish_workers!r}, "
            f"connection_name={self.connection_name!r})"
        )


def connection_parameters(config: RabbitConfig) -> pika.URLParameters:
    """pika parameters from the URL, with this service's timeouts and connection name.

    One attempt per call: the publisher decides when to try again, so a dead broker costs a caller
    at most ``connect_timeout`` rather than pika's retry loop.
    """
    params = pika.URLParameters(config.url)
    params.socket_timeout = config.connect_timeout
    params.stack_timeout = config.connect_timeout
    params.blocked_connection_timeout = config.confirm_timeout
    params.heartbeat = config.heartbeat
    params.connection_attempts = 1
    params.client_properties = {"connection_name": config.connection_name}
    return params

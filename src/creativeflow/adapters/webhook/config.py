"""Settings of the n8n webhook dispatcher."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit


def redact_url(url: str) -> str:
    """The URL with any password replaced, safe to log or show."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    netloc = f"{parts.username or ''}:***@{netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@dataclass(frozen=True, slots=True, repr=False)
class WebhookConfig:
    """Where n8n's job webhook is and how patiently to call it.

    ``timeout`` bounds each phase of one try (connecting, waiting for a pooled connection, writing
    the body, each read of the answer). ``max_attempts`` counts every try, the first included;
    between tries the dispatcher waits a full-jitter backoff, at most ``backoff_cap`` seconds (a
    ``Retry-After`` in seconds on a 429 or 5xx is followed up to that cap). ``check_timeout``
    bounds the readiness probe, which must answer faster than a dispatch.
    """

    url: str
    secret: str = field(repr=False)
    timeout: float = 5.0
    max_attempts: int = 3
    backoff_base: float = 0.2
    backoff_cap: float = 2.0
    check_timeout: float = 2.0
    max_connections: int = 20
    user_agent: str = "creativeflow-orchestrator"

    def __post_init__(self) -> None:
        if urlsplit(self.url).scheme not in ("http", "https"):
            raise ValueError("the n8n webhook URL must be http:// or https://")
        if not self.secret:
            raise ValueError("the n8n webhook secret must not be empty")
        if self.timeout <= 0 or self.check_timeout <= 0:
            raise ValueError("timeout and check_timeout must be positive")
        if self.max_attempts < 1 or self.max_connections < 1:
            raise ValueError("max_attempts and max_connections must be at least 1")
        if self.backoff_base < 0 or self.backoff_cap < 0:
            raise ValueError("backoff_base and backoff_cap must not be negative")

    @property
    def safe_url(self) -> str:
        return redact_url(self.url)

    def __repr__(self) -> str:
        return (
            f"WebhookConfig(url={self.safe_url!r}, secret='********', timeout={self.timeout!r}, "
            f"max_attempts={self.max_attempts!r}, backoff_base={self.backoff_base!r}, "
            f"backoff_cap={self.backoff_cap!r}, check_timeout={self.check_timeout!r}, "
            f"max_connections={self.max_connections!r})"
        )

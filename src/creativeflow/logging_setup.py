"""Logging: JSON lines for machines (the default) or plain text for a developer's terminal.

Every record carries the correlation id of the work in progress. Nothing here formats secrets:
settings hold them as ``SecretStr`` and adapters never pass them to a logger.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from creativeflow import correlation

_STANDARD = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class CorrelationFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "correlation_id", None):
            record.correlation_id = correlation.current() or "-"
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str = "INFO", fmt: str = "json", detailed: bool = False) -> None:
    """``detailed`` (the ``enableDetailedLogging`` toggle) logs the adapters' every call."""
    handler = logging.StreamHandler()
    handler.addFilter(CorrelationFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s %(levelname)-7s [%(correlation_id)s] %(name)s: %(message)s"
            )
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # pika logs every frame at DEBUG and every reconnect at WARNING; our adapter reports those
    logging.getLogger("pika").setLevel(logging.WARNING)
    # httpx logs every request at INFO: one line per notification sent
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # alembic announces each of its plugins at INFO whenever it is imported
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    if detailed:
        logging.getLogger("creativeflow.adapters").setLevel(logging.DEBUG)

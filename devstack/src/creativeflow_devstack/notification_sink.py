"""A stand-in for the Notification Service: accepts notifications and keeps them in memory.

``python -m creativeflow_devstack.notification_sink --port 8025`` serves it; tests use
:func:`running_sink` to serve it on a free port in a background thread.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, status
from pydantic import BaseModel, Field


class NotificationIn(BaseModel):
    user_id: str = Field(min_length=1)
    type: str = Field(min_length=1)
    request_id: str | None = None
    correlation_id: str | None = None
    title: str
    message: str
    data: dict[str, Any] = Field(default_factory=dict)


class NotificationOut(NotificationIn):
    id: int
    received_at: datetime


class NotificationStore:
    """Thread-safe: the app's handlers and a test thread read it at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[NotificationOut] = []

    def add(self, notification: NotificationIn) -> NotificationOut:
        with self._lock:
            stored = NotificationOut(
                **notification.model_dump(),
                id=len(self._items) + 1,
                received_at=datetime.now(UTC),
            )
            self._items.append(stored)
            return stored

    def find(
        self, user_id: str | None = None, request_id: str | None = None
    ) -> list[NotificationOut]:
        with self._lock:
            return [
                item
                for item in self._items
                if (user_id is None or item.user_id == user_id)
                and (request_id is None or item.request_id == request_id)
            ]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def create_sink_app(store: NotificationStore | None = None) -> FastAPI:
    app = FastAPI(title="CreativeFlow notification sink")
    app.state.store = store or NotificationStore()

    @app.post("/api/v1/notifications", status_code=status.HTTP_202_ACCEPTED)
    def receive(notification: NotificationIn, request: Request) -> NotificationOut:
        sink: NotificationStore = request.app.state.store
        return sink.add(notification)

    @app.get("/api/v1/notifications")
    def list_notifications(
        request: Request, user_id: str | None = None, request_id: str | None = None
    ) -> list[NotificationOut]:
        sink: NotificationStore = request.app.state.store
        return sink.find(user_id=user_id, request_id=request_id)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


@dataclass(frozen=True, slots=True)
class RunningSink:
    base_url: str
    store: NotificationStore


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def running_sink(host: str = "127.0.0.1", start_timeout: float = 10.0) -> Iterator[RunningSink]:
    """Serve a fresh sink on a free port in a background thread for the ``with`` block."""
    store = NotificationStore()
    port = free_port(host)
    config = uvicorn.Config(
        create_sink_app(store), host=host, port=port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="notification-sink", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the notification sink did not start on {host}:{port}")
        time.sleep(0.02)
    try:
        yield RunningSink(base_url=f"http://{host}:{port}", store=store)
    finally:
        server.should_exit = True
        thread.join(start_timeout)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m creativeflow_devstack.notification_sink")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025)
    args = parser.parse_args(argv)
    uvicorn.run(create_sink_app(), host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

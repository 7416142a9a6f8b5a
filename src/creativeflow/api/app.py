"""The app factory: routes, error handlers, middleware, and a lifespan that opens and closes
every connection through the composition root."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi

from creativeflow import __version__
from creativeflow.api.middleware import BodySizeLimitMiddleware, CorrelationIdMiddleware
from creativeflow.api.problems import install_problem_handlers
from creativeflow.api.routes import admin, callbacks, credits, generations, health
from creativeflow.api.routes import metrics as metrics_route
from creativeflow.api.schemas import CallbackPayload
from creativeflow.bootstrap import Container, build_container
from creativeflow.observability.http import HttpMetricsMiddleware
from creativeflow.observability.metrics import Metrics
from creativeflow.settings import Settings

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024

DESCRIPTION = """
Turns a user's creative request into AI generation jobs. Odoo authorises and debits the credits;
n8n runs the models and calls back; the user is notified.

Client routes take the user from the gateway (`X-User-Id`, trusted only with `X-Gateway-Secret`).
n8n callbacks are signed the Standard Webhooks way. Errors are `application/problem+json`.
"""


def create_app(
    settings: Settings | None = None,
    container_factory: Callable[[Settings], Container] | None = None,
) -> FastAPI:
    settings = settings or Settings()
    metrics = Metrics(version=__version__)  # one registry per app, never the process-global one
    if container_factory is None:
        container_factory = functools.partial(build_container, metrics=metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        container = container_factory(settings)
        app.state.container = container
        container.events_listener.start()
        if container.results_consumer is not None:
            # one consumer per replica, in its own thread; it hands results to this loop
            container.results_consumer.start(asyncio.get_running_loop())
        webhook_sweeper = None
        if container.client_webhooks is not None and settings.client_webhook_sweep_seconds > 0:
            webhook_sweeper = asyncio.create_task(
                _deliver_webhooks_periodically(container, settings.client_webhook_sweep_seconds)
            )
        sweeper = None
        if settings.recovery_interval_seconds > 0:
            sweeper = asyncio.create_task(
                _recover_periodically(container, settings.recovery_interval_seconds)
            )
        try:
            yield
        finally:
            for task in (sweeper, webhook_sweeper):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            await container.close()

    app = FastAPI(
        title="CreativeFlow AI Generation Orchestrator",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.openapi = lambda: _openapi_with_callback_body(app)  # type: ignore[method-assign]
    app.state.metrics = metrics
    install_problem_handlers(app)
    for router in (
        generations.router,
        callbacks.router,
        credits.router,
        admin.router,
        health.router,
        metrics_route.router,
    ):
        app.include_router(router)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=MAX_BODY_BYTES)
    if settings.cors_allowed_origins:
        _allow_browsers(app, settings.cors_allowed_origins)
    app.add_middleware(CorrelationIdMiddleware)
    # outermost, so it also times what the middleware above answers (413 for an oversize body)
    app.add_middleware(HttpMetricsMiddleware, metrics=metrics)
    return app


def stop_event_streams(app: object) -> None:
    """End every open event stream of ``app`` (its clients reconnect with their Last-Event-ID):
    the server calls it when it starts stopping, since it waits for open responses to end
    before the lifespan's shutdown runs. Any other app is left alone."""
    state = getattr(app, "state", None)
    container = getattr(state, "container", None) if state is not None else None
    if isinstance(container, Container):
        container.live_events.drain()


def _allow_browsers(app: FastAPI, origins: tuple[str, ...]) -> None:
    """CORS for the listed origins. Identity travels in headers, never cookies, so no
    credentials mode; a browser may send what a client route reads and read what it answers."""
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(origins),
        allow_methods=["GET", "POST"],
        # Last-Event-ID: a browser resuming a live event stream sends it
        allow_headers=[
            "Authorization",
            "Content-Type",
            "Idempotency-Key",
            "Last-Event-ID",
            "X-Request-ID",
        ],
        expose_headers=["Location", "Retry-After", "X-Request-ID", "Idempotent-Replayed"],
        max_age=600,
    )


async def _recover_periodically(container: Container, interval: float) -> None:
    """The in-process recovery sweep; replicas share the work through SKIP LOCKED."""
    recovery = container.recovery
    while True:
        await asyncio.sleep(interval)
        try:
            report = await recovery.sweep()
        except Exception:
            log.exception("recovery sweep failed; trying again in %ss", interval)
            continue
        if report.debits_settled or report.requests_timed_out or report.refunds_applied:
            log.info("recovery sweep: %s", report.summary())


async def _deliver_webhooks_periodically(container: Container, interval: float) -> None:
    """Posts what is due to clients' webhooks: retries, and events whose wake-up never came;
    replicas share the work through SKIP LOCKED and the webhooks' leases."""
    webhooks = container.client_webhooks
    assert webhooks is not None
    while True:
        await asyncio.sleep(interval)
        try:
            await webhooks.deliver_due()
        except Exception:
            log.exception("webhook delivery sweep failed; trying again in %ss", interval)


def _openapi_with_callback_body(app: FastAPI) -> dict[str, Any]:
    """The generated document, plus the callback payload schema the callback routes reference
    (they read their body raw, so FastAPI does not see it)."""
    if app.openapi_schema:
        return app.openapi_schema
    document = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    payload = CallbackPayload.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(payload.pop("$defs", {}))
    schemas["CallbackPayload"] = payload
    app.openapi_schema = document
    return document

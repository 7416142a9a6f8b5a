"""Pure ASGI middleware timing every HTTP request by route template, method and status.

The route label is the matched route's path template (``/api/v1/generations/{request_id}``), never
the raw path, so ids in URLs cannot grow the number of series. The router records the route it
matched in ``scope["route"]`` (a 405 too); a path no route matches is labelled ``unmatched``, and
so is a request another middleware refused before routing when its route cannot be found by
matching the app's top-level routes (FastAPI keeps included routers' routes behind a private
wrapper), e.g. a 413 for a declared oversize body. Put it outermost so it times those too.
"""

from __future__ import annotations

import time

from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from creativeflow.observability.metrics import UNMATCHED_ROUTE, Metrics


class HttpMetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an exception before the response started is a 500 to the client
        observed = False

        def observe() -> None:
            nonlocal observed
            observed = True
            self.metrics.http_request(
                known_method(scope.get("method", "GET")),
                route_template(scope),
                status,
                time.perf_counter() - started,
            )

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                if _is_event_stream(message):
                    # a live event stream lasts as long as its request: its answer is timed
                    # to when it started streaming
                    observe()
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            if not observed:
                observe()


def _is_event_stream(start: Message) -> bool:
    for name, value in start.get("headers", ()):
        if name.lower() == b"content-type":
            return bytes(value).split(b";")[0].strip() == b"text/event-stream"
    return False


KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def known_method(method: str) -> str:
    """Any other token a client sends is ``OTHER``: methods are a label, so a closed set."""
    return method if method in KNOWN_METHODS else "OTHER"


def route_template(scope: Scope) -> str:
    """The template of the route that served (or would serve) this request."""
    route = scope.get("route")  # set by Starlette's router when it matched
    path = getattr(route, "path", None)
    if isinstance(path, str) and path:
        return path
    app = scope.get("app")
    routes = getattr(getattr(app, "router", None), "routes", None) or getattr(app, "routes", None)
    partial: str | None = None
    for candidate in routes or ():
        match, child_scope = candidate.matches(scope)
        if match is Match.NONE:
            continue
        # an included router answers with the inner route in its child scope
        inner = child_scope.get("route") if isinstance(child_scope, dict) else None
        template = getattr(inner, "path", None) or getattr(candidate, "path", None)
        if not isinstance(template, str) or not template:
            continue
        if match is Match.FULL:
            return template
        if partial is None:
            partial = template  # the path exists, with another method (405)
    return partial or UNMATCHED_ROUTE

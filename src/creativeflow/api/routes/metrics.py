"""``GET /metrics``: the app's Prometheus registry, for Prometheus to scrape.

Rendering runs in a worker thread: the scrape-time sources (the tracking database's counts, the
queue depths) are blocking calls and must not hold the event loop. Keep this route inside the
private network: the API gateway does not route it.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client.exposition import choose_encoder

from creativeflow.observability.metrics import Metrics

router = APIRouter(tags=["operations"])


def get_metrics(request: Request) -> Metrics:
    """The app's :class:`Metrics` (``app.state.metrics``), for routes that report outcomes."""
    metrics: Metrics = request.app.state.metrics
    return metrics


MetricsDep = Annotated[Metrics, Depends(get_metrics)]


@router.get(
    "/metrics",
    summary="Prometheus metrics (text exposition format, or OpenMetrics when asked for)",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
)
async def metrics(request: Request, metrics: MetricsDep) -> Response:
    encode, content_type = choose_encoder(request.headers.get("accept", ""))
    body = await asyncio.to_thread(encode, metrics.registry)
    return Response(content=body, media_type=content_type)

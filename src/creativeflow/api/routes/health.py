"""Liveness and readiness for the operators' probes."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from creativeflow.api.dependencies import ContainerDep
from creativeflow.api.routes.metrics import MetricsDep

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="The database, the broker and Odoo are reachable",
    responses={503: {"description": "a dependency is unreachable"}},
)
async def readyz(container: ContainerDep, metrics: MetricsDep) -> JSONResponse:
    database, broker, odoo = await asyncio.gather(
        container.db.ping(), container.publisher.check(), container.credits.ping()
    )
    checks = {"database": database, "broker": broker, "odoo": odoo}
    for dependency, ok in checks.items():
        metrics.dependency_checked(dependency, ok)
    ready = all(checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
    )

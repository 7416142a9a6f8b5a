"""Liveness and readiness for the operators' probes."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from creativeflow.api.dependencies import ReadinessDep, SettingsDep
from creativeflow.api.routes.metrics import MetricsDep

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="The database, the job dispatch and Odoo answer",
    description="`checks.broker` is the job dispatch named by `dispatch`: with `rabbitmq`, the "
    "broker and its exchange; with `webhook`, n8n saying (to a CORS preflight, which runs and "
    "charges nothing) that an active workflow takes jobs on `N8N_WEBHOOK_URL`. "
    "`checks.storage` (when the assets' storage is configured) is its bucket answering; an "
    "outage of it alone leaves the service ready, since the copies wait and are retried. With "
    "`ENABLE_N8N_RESULTS_QUEUE`, `checks.results_queue` says whether this replica is consuming "
    "n8n's results queue.",
    responses={503: {"description": "a dependency is unreachable"}},
)
async def readyz(
    readiness: ReadinessDep, metrics: MetricsDep, settings: SettingsDep
) -> JSONResponse:
    report = await readiness.check()
    # "broker" names the job dispatch, whichever DISPATCH_MODE carries it
    checks = {"database": report.database, "broker": report.dispatch, "odoo": report.odoo}
    if report.storage is not None:
        # reported, but copies wait for it: an outage of it alone keeps the service ready
        checks["storage"] = report.storage
    if report.results is not None:  # ENABLE_N8N_RESULTS_QUEUE: the results queue is consumed
        checks["results_queue"] = report.results
    for dependency, ok in checks.items():
        metrics.dependency_checked(dependency, ok)
    ready = report.ready
    body = {
        "status": "ready" if ready else "unavailable",
        "checks": checks,
        "dispatch": settings.dispatch_mode,
    }
    return JSONResponse(body, status_code=200 if ready else 503)

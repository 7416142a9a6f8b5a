"""Admin routes, behind their own credential: reconciliation of the tracking database with
Odoo's credit ledger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.exceptions import HTTPException

from creativeflow.api.dependencies import ReconcilerDep
from creativeflow.api.identity import AdminOnly
from creativeflow.api.schemas import IsoMoment
from creativeflow.services.reconciliation import ReconciliationReport

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])

# entries become visible when their Odoo transaction commits: leave the last minutes alone
SETTLING_MARGIN = timedelta(minutes=5)
# no credit moved before then: a window reaching further back is cut there
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)


def default_window(now: datetime) -> tuple[datetime, datetime]:
    until = now - SETTLING_MARGIN
    return until - timedelta(hours=24), until


@router.get(
    "/reconciliation",
    summary="Compare the tracking database with Odoo's ledger over a time window",
    responses={
        401: {"description": "missing or invalid admin credential"},
        422: {"description": "since is not before until"},
        503: {"description": "Odoo is unavailable"},
    },
)
async def reconciliation(
    _: AdminOnly,
    reconciler: ReconcilerDep,
    since: Annotated[
        IsoMoment | None, Query(description="start (ISO 8601; default: until - 24h)")
    ] = None,
    until: Annotated[
        IsoMoment | None, Query(description="end (ISO 8601; default: now - 5 min)")
    ] = None,
) -> dict[str, Any]:
    default_since, default_until = default_window(datetime.now(UTC))
    until = _utc(until) if until else default_until
    since = _utc(since) if since else until - (default_until - default_since)
    if since >= until:
        raise HTTPException(422, "since must be before until")
    since, until = max(since, EARLIEST), max(until, EARLIEST)
    if since == until:  # wholly before any credit moved: nothing to compare
        return ReconciliationReport(since=since, until=until).to_dict()
    report = await reconciler.reconcile(since, until)
    return report.to_dict()


def _utc(moment: datetime) -> datetime:
    """In UTC, as Odoo's ledger and the tracking tables keep time."""
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)

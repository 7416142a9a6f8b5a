"""n8n's callbacks: one endpoint with an ``event`` field, and the three stage routes.

The signature is checked over the raw body before anything is parsed (``callback_intake``, which
the results-queue consumer shares); a callback that fails the check changes nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from starlette.exceptions import HTTPException

from creativeflow.api.callback_intake import CallbackRefused, read_callback
from creativeflow.api.dependencies import CallbacksDep, SettingsDep
from creativeflow.api.routes.metrics import get_metrics
from creativeflow.api.schemas import CallbackAck
from creativeflow.domain.jobs import CallbackEvent
from creativeflow.services.callbacks import CallbackService
from creativeflow.settings import Settings

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1/callbacks/n8n", tags=["n8n callbacks"])

_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "unsigned, wrongly signed or stale callback; nothing changed"},
    404: {"description": "no such job for this request; nothing changed"},
    409: {"description": "replayed webhook-id or an event that does not fit the job"},
    422: {"description": "the body does not match the schema"},
    503: {"description": "the job's dispatch is still being recorded; retry"},
}


async def _handle(
    request: Request,
    settings: Settings,
    callbacks: CallbackService,
    implied: CallbackEvent | None,
) -> CallbackAck:
    body = await request.body()
    headers = {k.lower(): v for k, v in request.headers.items()}
    try:
        report = read_callback(settings, headers, body, implied)
    except CallbackRefused as refused:
        if refused.signature_refused:
            log.warning("callback refused: %s", refused.detail)
            get_metrics(request).callback_outcome("rejected")
        raise HTTPException(refused.status_code, refused.detail) from None
    outcome = await callbacks.handle(report)
    get_metrics(request).callback_outcome(outcome.value)
    if outcome == "replayed":
        raise HTTPException(409, "this webhook-id was already received; nothing changed")
    return CallbackAck(outcome=outcome.value, job_id=report.job_id)


# the body is read raw (the signature covers its exact bytes), so it is documented by hand
_SIGNED_JSON_BODY: dict[str, Any] = {
    "parameters": [
        {
            "name": "webhook-id",
            "in": "header",
            "required": True,
            "description": "unique per delivery; a replayed id is refused (409)",
            "schema": {"type": "string", "maxLength": 255},
        },
        {
            "name": "webhook-timestamp",
            "in": "header",
            "required": True,
            "description": "unix seconds; refused beyond five minutes either way",
            "schema": {"type": "string", "pattern": "^[0-9]+$"},
        },
        {
            "name": "webhook-signature",
            "in": "header",
            "required": True,
            "description": "v1,<base64 HMAC-SHA256 of '{id}.{timestamp}.{raw body}'>, "
            "space-separated when several",
            "schema": {"type": "string"},
        },
    ],
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/CallbackPayload"}}
        },
    },
}


@router.post(
    "",
    response_model=CallbackAck,
    summary="Any n8n event (named by `event`)",
    responses=_RESPONSES,
    openapi_extra=_SIGNED_JSON_BODY,
)
async def n8n_callback(
    request: Request, settings: SettingsDep, callbacks: CallbacksDep
) -> CallbackAck:
    return await _handle(request, settings, callbacks, None)


@router.post(
    "/samples",
    response_model=CallbackAck,
    summary="Samples are ready",
    responses=_RESPONSES,
    openapi_extra=_SIGNED_JSON_BODY,
)
async def n8n_samples_callback(
    request: Request, settings: SettingsDep, callbacks: CallbacksDep
) -> CallbackAck:
    return await _handle(request, settings, callbacks, CallbackEvent.SAMPLES_READY)


@router.post(
    "/final",
    response_model=CallbackAck,
    summary="The final asset is ready",
    responses=_RESPONSES,
    openapi_extra=_SIGNED_JSON_BODY,
)
async def n8n_final_callback(
    request: Request, settings: SettingsDep, callbacks: CallbacksDep
) -> CallbackAck:
    return await _handle(request, settings, callbacks, CallbackEvent.FINAL_READY)


@router.post(
    "/error",
    response_model=CallbackAck,
    summary="The job failed",
    responses=_RESPONSES,
    openapi_extra=_SIGNED_JSON_BODY,
)
async def n8n_error_callback(
    request: Request, settings: SettingsDep, callbacks: CallbacksDep
) -> CallbackAck:
    return await _handle(request, settings, callbacks, CallbackEvent.FAILED)

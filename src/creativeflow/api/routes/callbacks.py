"""n8n's callbacks: one endpoint with an ``event`` field, and the three stage routes.

The signature is checked over the raw body before anything is parsed; a callback that fails the
check changes nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from creativeflow.api.dependencies import CallbacksDep, SettingsDep
from creativeflow.api.routes.metrics import get_metrics
from creativeflow.api.schemas import CallbackAck, CallbackPayload, asset_rules
from creativeflow.domain.jobs import CallbackEvent, FailureCategory
from creativeflow.domain.model import Failure
from creativeflow.services.callbacks import CallbackReport, CallbackService
from creativeflow.settings import Settings
from creativeflow.webhook_signature import SignatureError, verify

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1/callbacks/n8n", tags=["n8n callbacks"])

_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "unsigned, wrongly signed or stale callback; nothing changed"},
    404: {"description": "no such job for this request; nothing changed"},
    409: {"description": "replayed webhook-id or an event that does not fit the job"},
    422: {"description": "the body does not match the schema"},
    503: {"description": "the job's dispatch is still being recorded; retry"},
}


async def _verified_payload(request: Request, settings: Settings) -> tuple[str, CallbackPayload]:
    body = await request.body()
    headers = {k.lower(): v for k, v in request.headers.items()}
    if settings.enable_n8n_callback_security:
        try:
            verified = verify(
                settings.callback_secrets,
                headers,
                body,
                now=int(time.time()),
                tolerance_seconds=settings.callback_tolerance_seconds,
            )
        except SignatureError as refused:
            log.warning("callback refused: %s", refused)
            get_metrics(request).callback_outcome("rejected")
            raise HTTPException(401, f"callback signature refused: {refused}") from None
        webhook_id = verified.msg_id
    else:
        webhook_id = headers.get("webhook-id") or f"unsigned-{time.time_ns()}"
    try:
        # pydantic's own JSON parser bounds nesting depth, where json.loads would recurse
        payload = CallbackPayload.model_validate_json(
            body, context=asset_rules(settings.asset_url_hosts)
        )
    except (ValueError, ValidationError) as invalid:
        errors = invalid.errors(include_input=False) if isinstance(invalid, ValidationError) else []
        raise HTTPException(
            422, f"invalid callback body: {_summary(errors) or 'not JSON'}"
        ) from None
    return webhook_id, payload


def _summary(errors: Sequence[object]) -> str:
    parts = []
    for error in errors[:5]:
        if isinstance(error, dict):
            loc = ".".join(str(p) for p in error.get("loc", ()))
            parts.append(f"{loc}: {error.get('msg', '')}")
    return "; ".join(parts)


def _report(webhook_id: str, payload: CallbackPayload, event: CallbackEvent) -> CallbackReport:
    if event is CallbackEvent.SAMPLES_READY and not payload.samples:
        raise HTTPException(422, "a samples_ready callback needs at least one sample")
    if event is CallbackEvent.FINAL_READY and payload.asset is None:
        raise HTTPException(422, "a final_ready callback needs an asset")
    failure = None
    raw_error = None
    if event is CallbackEvent.FAILED:
        error = payload.error
        if error is None:
            raise HTTPException(422, "a failed callback needs an error")
        failure = Failure.reported(FailureCategory(error.category), error.code, error.message)
        raw_error = error.model_dump()
    return CallbackReport(
        webhook_id=webhook_id,
        event=event,
        job_id=payload.job_id,
        request_id=payload.request_id,
        samples=tuple(s.to_sample() for s in payload.samples),
        asset=payload.asset.to_sample() if payload.asset else None,
        failure=failure,
        raw_error=raw_error,
    )


async def _handle(
    request: Request,
    settings: Settings,
    callbacks: CallbackService,
    implied: CallbackEvent | None,
) -> CallbackAck:
    webhook_id, payload = await _verified_payload(request, settings)
    stated = CallbackEvent(payload.event) if payload.event else None
    if implied is not None and stated is not None and stated is not implied:
        raise HTTPException(422, f"this route takes {implied} events, not {stated}")
    event = implied or stated
    if event is None:
        raise HTTPException(422, "the callback names no event")
    outcome = await callbacks.handle(_report(webhook_id, payload, event))
    get_metrics(request).callback_outcome(outcome.value)
    if outcome == "replayed":
        raise HTTPException(409, "this webhook-id was already received; nothing changed")
    return CallbackAck(outcome=outcome.value, job_id=payload.job_id)


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

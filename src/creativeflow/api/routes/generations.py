"""Client routes: a user's generation requests. Every route is scoped to the caller."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import (
    APIRouter,
    BackgroundTasks,
    Body,
    Depends,
    Header,
    Path,
    Query,
    Request,
    Response,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.sse import EventSourceResponse

from creativeflow.api.dependencies import (
    GenerationsDep,
    LiveEventsDep,
    SettingsDep,
    only_query_parameters,
)
from creativeflow.api.identity import CurrentUser
from creativeflow.api.openapi_problems import problem_responses
from creativeflow.api.problems import problem_body, stored_answer
from creativeflow.api.schemas import (
    CONTROL,
    GenerationCreate,
    GenerationPage,
    GenerationView,
    IsoMoment,
    QuoteView,
    Regeneration,
    SampleSelection,
    webhook_url_refusal,
)
from creativeflow.api.sse import CURSOR_PATTERN, CURSOR_RULE, event_stream_body, parse_cursor
from creativeflow.domain.errors import DomainError
from creativeflow.domain.model import GenerationRequest
from creativeflow.domain.states import Status
from creativeflow.services.generations import RequestFilter, SubmitGeneration
from creativeflow.services.idempotency import IdempotencyKey, StoredAnswer, fingerprint
from creativeflow.settings import Settings

IdempotencyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7E]+$",
        description=(
            "Retries with the same key and body return the first answer and never charge "
            "again (kept 24 hours); the same key with another body is 422; 409 while the "
            "first call is still running."
        ),
    ),
]

router = APIRouter(prefix="/api/v1/generations", tags=["generations"])

RequestId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=36,
        pattern=r"^[!-~]+$",
        description="the request's id, as the submit answered it",
    ),
]
# a poller's hint: samples take seconds to minutes
POLL_AFTER_SECONDS = "5"


def _correlation_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("correlation_id") or "")


def _render(request: GenerationRequest) -> StoredAnswer:
    return StoredAnswer(202, GenerationView.of(request).model_dump(mode="json"))


def _render_error(error: DomainError) -> StoredAnswer | None:
    # an answer asking the client to retry later is not kept: the retry runs as a new call
    if error.status_code >= 500:
        return None
    return StoredAnswer(error.status_code, problem_body(error))


def _idempotency(
    settings: Settings, user_id: str, scope: str, key: str | None, body: Any
) -> IdempotencyKey | None:
    if key is None:
        return None
    return IdempotencyKey(
        user_id=user_id,
        scope=scope,
        key=key,
        fingerprint=fingerprint(scope, body),
        ttl=timedelta(hours=settings.idempotency_key_ttl_hours),
        render=_render,
        render_error=_render_error,
    )


def _where_to_poll(response: Response, request_id: str) -> None:
    response.headers["Location"] = f"{router.prefix}/{request_id}"
    response.headers["Retry-After"] = POLL_AFTER_SECONDS


async def _answer(
    step: Callable[[], Awaitable[GenerationRequest | StoredAnswer]], response: Response
) -> GenerationView | JSONResponse:
    """A paid step's 202, with where to poll; a replayed key answers as it first did."""
    done = await step()
    if isinstance(done, StoredAnswer):
        stored = stored_answer(done.status, done.body)
        if done.status == 202 and "id" in done.body:
            _where_to_poll(stored, str(done.body["id"]))
        return stored
    _where_to_poll(response, done.id)
    return GenerationView.of(done)


_ACCEPTED = {
    "headers": {
        "Location": {"description": "where to read the request", "schema": {"type": "string"}},
        "Retry-After": {
            "description": "seconds a poller should wait before reading it again",
            "schema": {"type": "integer"},
        },
    }
}
_PAID_STEP_ERRORS = problem_responses(401, 402, 403, 404, 409, 413, 422, 429, 500, 503)


def _webhook_url(body: GenerationCreate, settings: Settings) -> str | None:
    """The submit's webhook URL, refused (422, as any bad field) when this service sends no
    webhooks or may not post there."""
    if body.webhook_url is None:
        return None
    url = str(body.webhook_url)
    if not settings.client_webhooks_enabled:
        refusal: str | None = "this service sends no webhooks; follow the request's events instead"
    else:
        refusal = webhook_url_refusal(
            url, allow_private_hosts=settings.client_webhook_allow_private_hosts
        )
    if refusal:
        raise RequestValidationError(
            [{"loc": ("body", "webhook_url"), "msg": refusal, "type": "value_error"}]
        )
    return url


def _command(body: GenerationCreate, webhook_url: str | None = None) -> SubmitGeneration:
    return SubmitGeneration(
        prompt=body.prompt,
        format=body.format,
        width=body.width,
        height=body.height,
        samples=body.samples,
        style_guidance=body.style_guidance,
        brand_elements=body.brand_elements.model_dump(mode="json") if body.brand_elements else None,
        project_id=body.project_id,
        model=body.model,
        advanced_model=body.advanced_model,
        brief=body.brief(),
        webhook_url=webhook_url,
    )


@router.post(
    "/quote",
    response_model=QuoteView,
    summary="What a request would cost and whether it would be accepted now; nothing is charged",
    responses=problem_responses(401, 403, 413, 422, 500, 503),
)
async def quote_generation(
    body: GenerationCreate, user_id: CurrentUser, generations: GenerationsDep
) -> QuoteView:
    return QuoteView.of(await generations.quote(user_id, _command(body)))


@router.post(
    "",
    status_code=202,
    response_model=GenerationView,
    summary="Submit a creative generation request",
    responses={
        202: _ACCEPTED,
        **problem_responses(
            401,
            402,
            403,
            409,
            413,
            422,
            429,
            500,
            503,
            s409="an Idempotency-Key whose first call is still running",
        ),
    },
)
async def submit_generation(
    body: GenerationCreate,
    user_id: CurrentUser,
    generations: GenerationsDep,
    settings: SettingsDep,
    request: Request,
    response: Response,
    background: BackgroundTasks,
    idempotency_key: IdempotencyHeader = None,
) -> GenerationView | JSONResponse:
    command = _command(body, _webhook_url(body, settings))
    keyed = _idempotency(settings, user_id, "submit", idempotency_key, body.model_dump(mode="json"))
    correlation_id = _correlation_id(request)
    if settings.use_sync_credit_check:
        return await _answer(
            lambda: generations.submit(user_id, command, correlation_id, keyed), response
        )

    async def accept() -> GenerationRequest | StoredAnswer:
        created = await generations.accept(user_id, command, correlation_id, keyed)
        if isinstance(created, GenerationRequest):
            background.add_task(generations.process_pending_quietly, created.id)
        return created

    return await _answer(accept, response)


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)  # a time with no offset is read as UTC


@router.get(
    "",
    response_model=GenerationPage,
    summary="List the caller's generation requests, newest first",
    responses=problem_responses(401, 422, 500),
    dependencies=[
        Depends(
            only_query_parameters(
                "status", "project_id", "created_from", "created_before", "limit", "offset"
            )
        )
    ],
)
async def list_generations(
    user_id: CurrentUser,
    generations: GenerationsDep,
    status: Status | None = None,
    project_id: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=128,
            pattern=f"^[^{CONTROL}]+$",
            description="only the requests submitted with this project_id",
        ),
    ] = None,
    created_from: Annotated[
        IsoMoment | None,
        Query(
            description="only requests created at or after this time (ISO 8601; UTC if no offset)"
        ),
    ] = None,
    created_before: Annotated[
        IsoMoment | None,
        Query(description="only requests created before this time (ISO 8601; UTC if no offset)"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> GenerationPage:
    which = RequestFilter(
        status=status,
        project_id=project_id,
        created_from=_utc(created_from),
        created_before=_utc(created_before),
    )
    items, total = await generations.list(user_id, which, limit=limit, offset=offset)
    return GenerationPage(
        items=[GenerationView.of(r) for r in items], total=total, limit=limit, offset=offset
    )


@router.get(
    "/{request_id}",
    response_model=GenerationView,
    summary="Read one generation request, with what each paid step charged and refunded",
    responses=problem_responses(401, 404, 422, 500),
)
async def get_generation(
    request_id: RequestId, user_id: CurrentUser, generations: GenerationsDep
) -> GenerationView:
    return GenerationView.of(await generations.get(user_id, request_id))


@router.post(
    "/{request_id}/selection",
    status_code=202,
    response_model=GenerationView,
    summary="Pick a sample and start the high-resolution final asset (charged)",
    responses={
        202: _ACCEPTED,
        **_PAID_STEP_ERRORS,
        409: {
            **_PAID_STEP_ERRORS[409],
            "description": "the request is not awaiting a selection, no such sample, or an "
            "Idempotency-Key whose first call is still running",
        },
    },
)
async def select_sample(
    request_id: RequestId,
    body: SampleSelection,
    user_id: CurrentUser,
    generations: GenerationsDep,
    settings: SettingsDep,
    response: Response,
    idempotency_key: IdempotencyHeader = None,
) -> GenerationView | JSONResponse:
    keyed = _idempotency(
        settings, user_id, f"selection:{request_id}", idempotency_key, body.model_dump()
    )
    return await _answer(
        lambda: generations.select(user_id, request_id, body.sample_id, keyed), response
    )


@router.post(
    "/{request_id}/regeneration",
    status_code=202,
    response_model=GenerationView,
    summary="Ask for new samples (charged again, as many as the request first asked for)",
    responses={
        202: _ACCEPTED,
        **_PAID_STEP_ERRORS,
        409: {
            **_PAID_STEP_ERRORS[409],
            "description": "the request is not awaiting a selection, or an Idempotency-Key "
            "whose first call is still running",
        },
    },
)
async def regenerate_samples(
    request_id: RequestId,
    user_id: CurrentUser,
    generations: GenerationsDep,
    settings: SettingsDep,
    response: Response,
    body: Annotated[Regeneration | None, Body()] = None,
    idempotency_key: IdempotencyHeader = None,
) -> GenerationView | JSONResponse:
    keyed = _idempotency(settings, user_id, f"regeneration:{request_id}", idempotency_key, {})
    return await _answer(lambda: generations.regenerate(user_id, request_id, keyed), response)


@router.post(
    "/{request_id}/cancel",
    response_model=GenerationView,
    summary="Cancel a request; a stage still being processed is refunded and n8n told to stop",
    responses=problem_responses(
        401,
        404,
        409,
        422,
        500,
        s409="the request has ended, or a step of it is being paid for right now",
    ),
)
async def cancel_generation(
    request_id: RequestId, user_id: CurrentUser, generations: GenerationsDep
) -> GenerationView:
    return GenerationView.of(await generations.cancel(user_id, request_id))


_EVENTS_EXAMPLE = (
    "retry: 3000\n\n"
    "event: status_changed\n"
    'data: {"id":41,"type":"status_changed","request_id":"3f1c5a7e-...","at":"2026-12-04T'
    '18:00:01.120000+00:00","data":{"status":"PROCESSING_SAMPLES"}}\n'
    "id: 41\n\n"
    ": keep-alive\n\n"
)


@router.get(
    "/{request_id}/events",
    summary="Follow a request live: its status changes, samples, final asset, failure and "
    "credit movements, as Server-Sent Events; resumable with Last-Event-ID",
    responses={
        200: {
            "description": "the events after the cursor, then each new one as it happens; "
            "samples and the final asset with the link to download them now (our copy once "
            "stored, with asset_stored when it is); the stream ends once the request has ended "
            "and everything was sent (a completed one's final copy awaited, two minutes at most)",
            "content": {
                "text/event-stream": {"schema": {"type": "string"}, "example": _EVENTS_EXAMPLE}
            },
        },
        204: {"description": "the request has ended and nothing follows the cursor"},
        **problem_responses(
            401,
            404,
            422,
            429,
            500,
            503,
            s422=f"a Last-Event-ID (or last_event_id) that is not {CURSOR_RULE}, or not an "
            "event of this request",
            s429="the user already has as many event streams open as allowed; Retry-After",
            s503="this server serves as many event streams as it may; Retry-After",
        ),
    },
    dependencies=[Depends(only_query_parameters("last_event_id"))],
)
async def stream_events(
    request_id: RequestId,
    user_id: CurrentUser,
    live_events: LiveEventsDep,
    settings: SettingsDep,
    last_event_id_header: Annotated[
        str,
        Header(
            alias="Last-Event-ID",
            # documented, checked by parse_cursor (which says what a cursor is)
            json_schema_extra={"pattern": CURSOR_PATTERN},
            description="resume after this event (what an EventSource sends when it "
            "reconnects); wins over last_event_id",
        ),
    ] = "",
    last_event_id: Annotated[
        str,
        Query(
            json_schema_extra={"pattern": CURSOR_PATTERN},
            description="resume after this event, for clients that cannot set headers",
        ),
    ] = "",
) -> Response:
    after = parse_cursor(last_event_id_header, last_event_id)
    stream = await live_events.open(user_id, request_id, after)
    if stream is None:
        return Response(status_code=204)
    return EventSourceResponse(
        event_stream_body(stream, settings.event_stream_retry_ms),
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )

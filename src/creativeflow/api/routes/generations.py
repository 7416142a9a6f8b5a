"""Client routes: a user's generation requests. Every route is scoped to the caller."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Header, Query, Request
from fastapi.responses import JSONResponse

from creativeflow.api.dependencies import ContainerDep
from creativeflow.api.identity import CurrentUser
from creativeflow.api.problems import problem_body, stored_answer
from creativeflow.api.schemas import (
    GenerationCreate,
    GenerationPage,
    GenerationView,
    SampleSelection,
)
from creativeflow.bootstrap import Container
from creativeflow.domain.model import GenerationRequest
from creativeflow.domain.states import Status
from creativeflow.services.generations import SubmitGeneration
from creativeflow.services.idempotency import IdempotencyKey, ReplayedAnswer, fingerprint

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

_ERRORS = {
    401: {"description": "missing or invalid gateway credential"},
    404: {"description": "no such request for this user"},
    422: {"description": "the body does not match the schema"},
    503: {"description": "Odoo or the broker is unavailable; retry after Retry-After seconds"},
}


def _correlation_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("correlation_id") or "")


def _render(request: GenerationRequest) -> dict[str, Any]:
    return GenerationView.of(request).model_dump(mode="json")


def _idempotency(
    container: Container, user_id: str, scope: str, key: str | None, body: Any
) -> IdempotencyKey | None:
    if key is None:
        return None
    return IdempotencyKey(
        user_id=user_id,
        scope=scope,
        key=key,
        fingerprint=fingerprint(scope, body),
        ttl=timedelta(hours=container.settings.idempotency_key_ttl_hours),
        render=_render,
        render_error=problem_body,
    )


async def _answer(
    step: Callable[[], Awaitable[GenerationRequest]],
) -> GenerationView | JSONResponse:
    try:
        return GenerationView.of(await step())
    except ReplayedAnswer as replayed:
        return stored_answer(replayed.answer.status, replayed.answer.body)


@router.post(
    "",
    status_code=202,
    response_model=GenerationView,
    summary="Submit a creative generation request",
    responses={
        **_ERRORS,
        402: {"description": "insufficient credits"},
        403: {"description": "the subscription tier does not allow this request"},
    },
)
async def submit_generation(
    body: GenerationCreate,
    user_id: CurrentUser,
    container: ContainerDep,
    request: Request,
    background: BackgroundTasks,
    idempotency_key: IdempotencyHeader = None,
) -> GenerationView | JSONResponse:
    command = SubmitGeneration(
        prompt=body.prompt,
        format=body.format,
        width=body.width,
        height=body.height,
        samples=body.samples,
        style_guidance=body.style_guidance,
        brand_elements=body.brand_elements.model_dump(mode="json") if body.brand_elements else None,
        project_id=body.project_id,
        advanced_model=body.advanced_model,
    )
    service = container.generations
    keyed = _idempotency(
        container, user_id, "submit", idempotency_key, body.model_dump(mode="json")
    )
    correlation_id = _correlation_id(request)
    if container.settings.use_sync_credit_check:
        return await _answer(lambda: service.submit(user_id, command, correlation_id, keyed))

    async def accept() -> GenerationRequest:
        created = await service.accept(user_id, command, correlation_id, keyed)
        background.add_task(container.process_pending_quietly, created.id)
        return created

    return await _answer(accept)


@router.get(
    "",
    response_model=GenerationPage,
    summary="List the caller's generation requests, newest first",
    responses={401: _ERRORS[401], 422: _ERRORS[422]},
)
async def list_generations(
    user_id: CurrentUser,
    container: ContainerDep,
    status: Status | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> GenerationPage:
    items, total = await container.generations.list(
        user_id, status=status, limit=limit, offset=offset
    )
    return GenerationPage(
        items=[GenerationView.of(r) for r in items], total=total, limit=limit, offset=offset
    )


@router.get(
    "/{request_id}",
    response_model=GenerationView,
    summary="Read one generation request",
    responses={401: _ERRORS[401], 404: _ERRORS[404]},
)
async def get_generation(
    request_id: str, user_id: CurrentUser, container: ContainerDep
) -> GenerationView:
    return GenerationView.of(await container.generations.get(user_id, request_id))


@router.post(
    "/{request_id}/selection",
    status_code=202,
    response_model=GenerationView,
    summary="Pick a sample and start the high-resolution final asset (charged)",
    responses={
        **_ERRORS,
        402: {"description": "insufficient credits"},
        409: {"description": "the request is not awaiting a selection, or no such sample"},
    },
)
async def select_sample(
    request_id: str,
    body: SampleSelection,
    user_id: CurrentUser,
    container: ContainerDep,
    idempotency_key: IdempotencyHeader = None,
) -> GenerationView | JSONResponse:
    keyed = _idempotency(
        container, user_id, f"selection:{request_id}", idempotency_key, body.model_dump()
    )
    return await _answer(
        lambda: container.generations.select(user_id, request_id, body.sample_id, keyed)
    )


@router.post(
    "/{request_id}/regeneration",
    status_code=202,
    response_model=GenerationView,
    summary="Ask for new samples (charged again)",
    responses={
        **_ERRORS,
        402: {"description": "insufficient credits"},
        409: {"description": "the request is not awaiting a selection"},
    },
)
async def regenerate_samples(
    request_id: str,
    user_id: CurrentUser,
    container: ContainerDep,
    idempotency_key: IdempotencyHeader = None,
) -> GenerationView | JSONResponse:
    keyed = _idempotency(container, user_id, f"regeneration:{request_id}", idempotency_key, {})
    return await _answer(lambda: container.generations.regenerate(user_id, request_id, keyed))


@router.post(
    "/{request_id}/cancel",
    response_model=GenerationView,
    summary="Cancel a request that is pending or awaiting a selection",
    responses={401: _ERRORS[401], 404: _ERRORS[404], 409: {"description": "cannot cancel now"}},
)
async def cancel_generation(
    request_id: str, user_id: CurrentUser, container: ContainerDep
) -> GenerationView:
    return GenerationView.of(await container.generations.cancel(user_id, request_id))

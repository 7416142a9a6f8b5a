"""Client routes: a user's generation requests. Every route is scoped to the caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query, Request

from creativeflow.api.dependencies import ContainerDep
from creativeflow.api.identity import CurrentUser
from creativeflow.api.schemas import (
    GenerationCreate,
    GenerationPage,
    GenerationView,
    SampleSelection,
)
from creativeflow.domain.states import Status
from creativeflow.services.generations import SubmitGeneration

router = APIRouter(prefix="/api/v1/generations", tags=["generations"])

_ERRORS = {
    401: {"description": "missing or invalid gateway credential"},
    404: {"description": "no such request for this user"},
    422: {"description": "the body does not match the schema"},
    503: {"description": "Odoo or the broker is unavailable; retry after Retry-After seconds"},
}


def _correlation_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("correlation_id") or "")


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
) -> GenerationView:
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
    if container.settings.use_sync_credit_check:
        created = await service.submit(user_id, command, _correlation_id(request))
    else:
        created = await service.accept(user_id, command, _correlation_id(request))
        background.add_task(container.process_pending_quietly, created.id)
    return GenerationView.of(created)


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
    request_id: str, body: SampleSelection, user_id: CurrentUser, container: ContainerDep
) -> GenerationView:
    return GenerationView.of(
        await container.generations.select(user_id, request_id, body.sample_id)
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
    request_id: str, user_id: CurrentUser, container: ContainerDep
) -> GenerationView:
    return GenerationView.of(await container.generations.regenerate(user_id, request_id))


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

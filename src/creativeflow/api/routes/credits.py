"""The caller's tier, limits, prices, balance and credit history, as Odoo knows them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from creativeflow.api.dependencies import AccountDep, SettingsDep, only_query_parameters
from creativeflow.api.identity import CurrentUser
from creativeflow.api.openapi_problems import problem_responses
from creativeflow.api.schemas import (
    CreditHistoryView,
    CreditMovementView,
    CreditsView,
    LimitsView,
    PricesView,
    TierView,
)

router = APIRouter(prefix="/api/v1/credits", tags=["credits"])


@router.get(
    "",
    response_model=CreditsView,
    summary="The caller's subscription tier, limits, prices and credit balance",
    responses={
        401: {"description": "missing or invalid gateway credential"},
        403: {"description": "no credit account in Odoo for this user"},
        503: {"description": "Odoo is unavailable"},
    },
)
async def get_credits(
    user_id: CurrentUser, account: AccountDep, settings: SettingsDep
) -> CreditsView:
    found = await account.entitlements(user_id)
    return CreditsView(
        user_id=found.user_id,
        tier=TierView(code=found.tier_code, name=found.tier_name),
        limits=LimitsView(
            formats=list(found.limits.formats),
            max_width=found.limits.max_width,
            max_height=found.limits.max_height,
            max_samples_per_request=found.limits.max_samples_per_request,
            models=list(found.limits.models),
            default_model=found.limits.default_model,
            advanced_models=settings.advanced_model in found.limits.models,
            max_requests_in_flight=found.limits.max_requests_in_flight,
        ),
        prices=PricesView(
            sample=found.prices.sample,
            final=found.prices.final,
            regeneration_sample=found.prices.regeneration_sample,
        ),
        balance=found.balance,
    )


@router.get(
    "/history",
    response_model=CreditHistoryView,
    summary="The caller's credit movements in Odoo's ledger, newest first",
    responses={
        **problem_responses(
            401, 403, 422, 500, 503, s403="no credit account in Odoo for this user"
        ),
    },
    dependencies=[Depends(only_query_parameters("limit", "offset"))],
)
async def get_credit_history(
    user_id: CurrentUser,
    account: AccountDep,
    limit: Annotated[int, Query(ge=1, le=100, description="entries per page")] = 20,
    offset: Annotated[int, Query(ge=0, le=100_000, description="entries to skip")] = 0,
) -> CreditHistoryView:
    page = await account.history(user_id, limit=limit, offset=offset)
    return CreditHistoryView(
        items=[CreditMovementView.of(entry) for entry in page.entries],
        limit=limit,
        offset=offset,
        has_more=page.has_more,
    )

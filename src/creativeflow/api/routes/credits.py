"""The caller's tier, limits, prices and balance, as Odoo knows them."""

from __future__ import annotations

from fastapi import APIRouter

from creativeflow.api.dependencies import AccountDep
from creativeflow.api.identity import CurrentUser
from creativeflow.api.schemas import CreditsView, LimitsView, PricesView, TierView

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
async def get_credits(user_id: CurrentUser, account: AccountDep) -> CreditsView:
    found = await account.entitlements(user_id)
    return CreditsView(
        user_id=found.user_id,
        tier=TierView(code=found.tier_code, name=found.tier_name),
        limits=LimitsView(
            formats=list(found.limits.formats),
            max_width=found.limits.max_width,
            max_height=found.limits.max_height,
            max_samples_per_request=found.limits.max_samples_per_request,
            advanced_models=found.limits.advanced_models,
            max_requests_in_flight=found.limits.max_requests_in_flight,
        ),
        prices=PricesView(
            sample=found.prices.sample,
            final=found.prices.final,
            regeneration_sample=found.prices.regeneration_sample,
        ),
        balance=found.balance,
    )

"""Who is calling. The gateway authenticates users; this service accepts a user id only from a
request that carries the gateway's shared credential (trusted-gateway mode)."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header, Request
from starlette.exceptions import HTTPException

USER_ID_HEADER = "X-User-Id"
GATEWAY_SECRET_HEADER = "X-Gateway-Secret"
ADMIN_TOKEN_HEADER = "X-Admin-Token"

_UNAUTHORIZED = {"WWW-Authenticate": 'Gateway realm="creativeflow"'}


def _same_secret(offered: str | None, expected: str) -> bool:
    if not offered or not expected:
        return False
    return hmac.compare_digest(offered.encode(), expected.encode())


def current_user(
    request: Request,
    x_user_id: Annotated[str | None, Header(alias=USER_ID_HEADER, max_length=128)] = None,
    x_gateway_secret: Annotated[str | None, Header(alias=GATEWAY_SECRET_HEADER)] = None,
) -> str:
    settings = request.app.state.settings
    if not _same_secret(x_gateway_secret, settings.gateway_shared_secret.get_secret_value()):
        raise HTTPException(401, "missing or invalid gateway credential", headers=_UNAUTHORIZED)
    user_id = (x_user_id or "").strip()
    if not user_id:
        raise HTTPException(401, f"missing {USER_ID_HEADER} header", headers=_UNAUTHORIZED)
    return user_id


def require_admin(
    request: Request,
    x_admin_token: Annotated[str | None, Header(alias=ADMIN_TOKEN_HEADER)] = None,
) -> None:
    settings = request.app.state.settings
    if not _same_secret(x_admin_token, settings.admin_token.get_secret_value()):
        raise HTTPException(401, "missing or invalid admin credential", headers=_UNAUTHORIZED)


CurrentUser = Annotated[str, Depends(current_user)]
AdminOnly = Annotated[None, Depends(require_admin)]

"""FastAPI dependency aliases, one for each use case a route calls and one for the settings. The
container itself is built by the composition root and kept on the app; no route reaches into it.

Every dependency is ``async def`` although none awaits: FastAPI runs a plain ``def`` dependency
in its thread pool, a thread hop per request for an attribute read."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError

from creativeflow.bootstrap import Container
from creativeflow.services.account import CreditAccount, Readiness
from creativeflow.services.callbacks import CallbackService
from creativeflow.services.generations import GenerationService
from creativeflow.services.live_events import LiveEvents
from creativeflow.services.reconciliation import Reconciler
from creativeflow.settings import Settings


def _container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_generations(request: Request) -> GenerationService:
    return _container(request).generations


async def get_live_events(request: Request) -> LiveEvents:
    return _container(request).live_events


async def get_callbacks(request: Request) -> CallbackService:
    return _container(request).callbacks


async def get_account(request: Request) -> CreditAccount:
    return _container(request).account


async def get_readiness(request: Request) -> Readiness:
    return _container(request).readiness


async def get_reconciler(request: Request) -> Reconciler:
    return _container(request).reconciler


def only_query_parameters(*known: str) -> Callable[[Request], Awaitable[None]]:
    """A dependency refusing any query parameter but ``known``: a filter or page size the
    service does not know would be silently ignored, and the client would read the wrong list
    as the right one."""
    names = frozenset(known)

    async def refuse_unknown(request: Request) -> None:
        unknown = sorted(set(request.query_params) - names)
        if unknown:
            raise RequestValidationError(
                [
                    {
                        "loc": ("query", name),
                        "msg": "unknown query parameter; known: " + ", ".join(sorted(names)),
                        "type": "extra_forbidden",
                    }
                    for name in unknown
                ]
            )

    return refuse_unknown


SettingsDep = Annotated[Settings, Depends(get_settings)]
GenerationsDep = Annotated[GenerationService, Depends(get_generations)]
LiveEventsDep = Annotated[LiveEvents, Depends(get_live_events)]
CallbacksDep = Annotated[CallbackService, Depends(get_callbacks)]
AccountDep = Annotated[CreditAccount, Depends(get_account)]
ReadinessDep = Annotated[Readiness, Depends(get_readiness)]
ReconcilerDep = Annotated[Reconciler, Depends(get_reconciler)]

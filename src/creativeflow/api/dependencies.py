"""FastAPI dependency aliases; the container itself is built by the composition root."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from creativeflow.bootstrap import Container


async def get_container(request: Request) -> Container:
    # async: a plain ``def`` dependency would run in FastAPI's thread pool on every request
    container: Container = request.app.state.container
    return container


ContainerDep = Annotated[Container, Depends(get_container)]

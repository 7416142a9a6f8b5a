"""The correlation id of the work in progress, so one id finds a request's whole story."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar, Token

_current: ContextVar[str | None] = ContextVar("correlation_id", default=None)
_ACCEPTABLE = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def current() -> str | None:
    return _current.get()


def set_current(value: str | None) -> Token[str | None]:
    return _current.set(value)


def reset(token: Token[str | None]) -> None:
    _current.reset(token)


def accept_or_make(offered: str | None) -> str:
    """Use the caller's id when it is a plain token; otherwise make one."""
    if offered and _ACCEPTABLE.match(offered):
        return offered
    return uuid.uuid4().hex

"""The plain request and response values passed between the socket server and the routes.

Keeping them free of ``http.server`` lets the routes be tested and reasoned about as functions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    path: str
    query: str
    headers: Mapping[str, str]  # names in lower case
    body: bytes

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()


class DropConnection:
    """Answer nothing and close the socket: the "applied, but the reply was lost" fault."""

    def __repr__(self) -> str:
        return "DROP_CONNECTION"


DROP_CONNECTION: Final = DropConnection()

HttpOutcome = HttpResponse | DropConnection


def json_response(status: int, document: Any) -> HttpResponse:
    return HttpResponse(status, json.dumps(document).encode("utf-8"), "application/json")


def text_response(status: int, text: str) -> HttpResponse:
    return HttpResponse(status, text.encode("utf-8"))


def not_found() -> HttpResponse:
    # Werkzeug's wording, which is what an unknown path on a real Odoo answers.
    return text_response(
        404,
        "404 Not Found: The requested URL was not found on the server. If you entered the URL "
        "manually please check your spelling and try again.",
    )


def method_not_allowed(allowed: str) -> HttpResponse:
    return HttpResponse(
        405,
        b"405 Method Not Allowed: The method is not allowed for the requested URL.",
        headers=(("Allow", allowed),),
    )

"""Which Odoo the emulator claims to be, and what that version serves.

``common.version`` (XML-RPC and JSON-RPC), ``/web/webclient/version_info`` and ``db.server_version``
answer the claimed version; JSON-2 (``POST /json/2/<model>/<method>``) and ``GET /web/version``
exist from Odoo 19 on. Claiming an earlier version, the emulator answers them as Odoo 18 does:
every ``/json/...`` path matches Odoo 18's ``/json/<path:subpath>`` route (``auth='user'``,
``addons/web/controllers/json.py``), which sends a caller without a session to the login page
with a 303, and ``/web/version`` is an unknown page (404).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from .http_types import HttpResponse

JSON2_SINCE = 19
DEFAULT_VERSION = "18.0"
_VERSION = re.compile(r"(?P<major>[1-9][0-9]*)\.(?P<minor>[0-9]+)")


class VersionError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class ServerVersion:
    major: int
    minor: int = 0

    @classmethod
    def parse(cls, text: str) -> ServerVersion:
        """``"18.0"`` or ``"19.0"``: a major and a minor number."""
        match = _VERSION.fullmatch(text.strip()) if isinstance(text, str) else None
        if match is None:
            raise VersionError(
                f"an Odoo version is <major>.<minor>, e.g. 18.0 or 19.0; got {text!r}"
            )
        return cls(int(match.group("major")), int(match.group("minor")))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"

    @property
    def serves_json2(self) -> bool:
        return self.major >= JSON2_SINCE

    @property
    def info(self) -> list[Any]:
        """``server_version_info`` as Odoo gives it: ``[18, 0, 0, "final", 0, ""]``."""
        return [self.major, self.minor, 0, "final", 0, ""]

    def common_version(self) -> dict[str, Any]:
        """What ``common.version`` and ``/web/webclient/version_info`` answer."""
        return {
            "server_version": str(self),
            "server_version_info": self.info,
            "server_serie": str(self),
            "protocol_version": 1,
        }

    def web_version(self) -> dict[str, Any]:
        """What Odoo 19's ``GET /web/version`` answers."""
        return {"version_info": self.info, "version": str(self)}


def is_json_route(path: str) -> bool:
    """Paths Odoo 18's ``/json/<path:subpath>`` route matches."""
    return path.startswith("/json/") and len(path) > len("/json/")


def login_redirect(path: str, query: str) -> HttpResponse:
    """Odoo 18's answer to ``/json/...`` without a session: a 303 to the login page
    (``request.redirect_query('/web/login', {'redirect': full_path})``, Werkzeug's page)."""
    full_path = f"{path}?{query}"  # werkzeug's full_path keeps the "?" when there is no query
    location = "/web/login?redirect=" + quote(full_path, safe="")
    body = (
        "<!doctype html>\n<html lang=en>\n<title>Redirecting...</title>\n<h1>Redirecting...</h1>\n"
        "<p>You should be redirected automatically to the target URL: "
        f'<a href="{location}">{location}</a>. If not, click the link.\n'
    )
    return HttpResponse(
        303, body.encode("utf-8"), "text/html; charset=utf-8", (("Location", location),)
    )

"""``GatewayStub``: an HTTP gateway in front of Odoo that fails chosen requests on demand.

Real deployments put a proxy between the orchestrator and Odoo; a proxy answers 502/503/504 when
Odoo is slow or gone, sometimes after Odoo received (and applied) the call. The stub forwards
every POST to the target and, when a rule matches the request body, answers an HTTP error
instead: before forwarding (Odoo never saw it) or after (Odoo applied it, the reply is lost).
It passes on the headers JSON-2 needs (``Authorization``, ``X-Odoo-Database``) and Odoo's answer
whatever its status. It needs no emulator power, so these tests also run against a real Odoo.
"""

from __future__ import annotations

import http.client
import ssl
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

_FORWARDED_HEADERS = ("Content-Type", "Authorization", "X-Odoo-Database", "Accept", "User-Agent")


@dataclass(slots=True)
class _Rule:
    remaining: int
    marker: bytes
    status: int
    forward_first: bool


class GatewayStub:
    def __init__(self, upstream_url: str, *, tls: ssl.SSLContext | None = None) -> None:
        parts = urlsplit(upstream_url)
        self._scheme = parts.scheme
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []
        self._forwarded = 0
        self._failed = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._public_scheme = "https" if tls is not None else "http"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host = "localhost" if self._public_scheme == "https" else "127.0.0.1"
        return f"{self._public_scheme}://{host}:{self._server.server_address[1]}"

    @property
    def forwarded(self) -> int:
        """Requests passed on to the target (including those failed after forwarding)."""
        with self._lock:
            return self._forwarded

    @property
    def failed(self) -> int:
        """Requests answered with an injected HTTP error."""
        with self._lock:
            return self._failed

    def fail_next(
        self, n: int, *, marker: str, status: int = 502, forward_first: bool = False
    ) -> None:
        """The next ``n`` requests whose body contains ``marker`` get HTTP ``status``."""
        with self._lock:
            self._rules.append(_Rule(n, marker.encode(), status, forward_first))

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _take_rule(self, body: bytes) -> _Rule | None:
        with self._lock:
            for rule in self._rules:
                if rule.marker in body:
                    rule.remaining -= 1
                    if rule.remaining == 0:
                        self._rules.remove(rule)
                    return rule
            return None

    def _forward(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, str, bytes]:
        connection: http.client.HTTPConnection
        if self._scheme == "https":
            connection = http.client.HTTPSConnection(self._host, self._port, timeout=60)
        else:
            connection = http.client.HTTPConnection(self._host, self._port, timeout=60)
        try:
            connection.request("POST", path, body, headers)
            response = connection.getresponse()
            return response.status, response.getheader("Content-Type", ""), response.read()
        except (OSError, http.client.HTTPException):
            return 502, "text/plain", b"upstream failed"
        finally:
            connection.close()
            with self._lock:
                self._forwarded += 1

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                headers = {
                    name: value
                    for name in _FORWARDED_HEADERS
                    if (value := self.headers.get(name)) is not None
                }
                headers.setdefault("Content-Type", "text/xml")
                rule = gateway._take_rule(body)
                if rule is not None:
                    if rule.forward_first:
                        gateway._forward(self.path, body, headers)
                    with gateway._lock:
                        gateway._failed += 1
                    self._answer(rule.status, "text/html", b"<html>gateway error</html>")
                    return
                status, upstream_type, reply = gateway._forward(self.path, body, headers)
                self._answer(status, upstream_type, reply)

            def _answer(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

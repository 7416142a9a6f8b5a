"""The HTTP server: a standard-library threading server, one thread per connection.

It behaves on the socket as Werkzeug behaves in front of Odoo: every response carries
``Connection: close`` and the connection is closed after it, so each RPC pays for a new TCP
connection, as it does against a real Odoo. ``HttpListener`` owns the listening socket so it can
be closed (connections are then really refused by the kernel) and reopened on the same port.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import urlsplit

from .http_types import DropConnection, HttpOutcome, HttpRequest, HttpResponse, text_response

logger = logging.getLogger("creativeflow_devstack.odoo_emulator.server")

_POLL_INTERVAL = 0.05  # how fast serve_forever notices a shutdown request
_MAX_BODY = 16 * 1024 * 1024


class Application(Protocol):
    """What the server needs from the routes: one outcome per request."""

    def handle(self, request: HttpRequest) -> HttpOutcome: ...


class _EmulatorHttpServer(ThreadingHTTPServer):
    daemon_threads = True  # never let a stuck client keep the process (or a test run) alive
    allow_reuse_address = True  # reopen on the same port despite connections in TIME_WAIT
    request_queue_size = 128  # bursts of concurrent clients must queue, not wait on SYN retries

    def __init__(self, address: tuple[str, int], app: Application) -> None:
        self.app = app
        super().__init__(address, _RequestHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client hanging up mid-request is normal under fault injection; no stderr traceback.
        logger.debug("error while serving %s", client_address, exc_info=True)


class _RequestHandler(BaseHTTPRequestHandler):
    server: _EmulatorHttpServer
    protocol_version = "HTTP/1.1"
    server_version = "OdooEmulator/18.0"

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_OPTIONS(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        # The routes log one line per request themselves, without the noise of http.server.
        return

    def _serve(self) -> None:
        self.close_connection = True
        try:
            request = self._read_request()
        except ValueError as exc:
            self._write(text_response(400, str(exc)))
            return
        try:
            outcome = self.server.app.handle(request)
        except Exception:
            logger.exception("unexpected error serving %s %s", self.command, self.path)
            outcome = text_response(500, "500 Internal Server Error")
        if isinstance(outcome, DropConnection):
            self._drop()
        else:
            self._write(outcome)

    def _read_request(self) -> HttpRequest:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise ValueError("chunked request bodies are not supported: send Content-Length")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise ValueError("invalid Content-Length") from None
        if length < 0 or length > _MAX_BODY:
            raise ValueError("invalid Content-Length")
        body = self.rfile.read(length) if length else b""
        target = urlsplit(self.path)
        headers = {name.lower(): value for name, value in self.headers.items()}
        return HttpRequest(self.command, target.path, target.query, headers, body)

    def _write(self, response: HttpResponse) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def _drop(self) -> None:
        """Close without a byte of response: the client sees the connection end."""
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class HttpListener:
    """The listening socket and its serving thread, which can be paused and resumed."""

    def __init__(self, app: Application) -> None:
        self._app = app
        self._lock = threading.Lock()
        self._server: _EmulatorHttpServer | None = None
        self._thread: threading.Thread | None = None
        self._address: tuple[str, int] | None = None

    @property
    def address(self) -> tuple[str, int] | None:
        """(host, port) once opened, kept while paused, ``None`` once closed."""
        with self._lock:
            return self._address

    @property
    def listening(self) -> bool:
        with self._lock:
            return self._server is not None

    def open(self, host: str, port: int) -> tuple[str, int]:
        with self._lock:
            if self._address is not None:
                raise RuntimeError(f"already started on {self._address[0]}:{self._address[1]}")
            self._serve_on(host, port)
            assert self._server is not None
            self._address = (host, int(self._server.server_address[1]))
            return self._address

    def pause(self) -> None:
        """Close the listening socket: new connections are refused by the kernel."""
        with self._lock:
            self._stop_serving()

    def resume(self) -> None:
        """Listen again on the same address, unless closed for good meanwhile."""
        with self._lock:
            if self._address is not None and self._server is None:
                self._serve_on(*self._address)

    def close(self) -> None:
        with self._lock:
            self._stop_serving()
            self._address = None

    def _serve_on(self, host: str, port: int) -> None:
        server = _EmulatorHttpServer((host, port), self._app)
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": _POLL_INTERVAL},
            name=f"odoo-emulator-{server.server_address[1]}",
            daemon=True,
        )
        thread.start()
        self._server, self._thread = server, thread

    def _stop_serving(self) -> None:
        server, thread = self._server, self._thread
        self._server, self._thread = None, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

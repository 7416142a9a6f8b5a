"""The transports on raw sockets: split timeouts, "never reached" told from "no reply", and each
protocol's faults mapped to the adapter's errors (JSON-2 on a scripted server)."""

from __future__ import annotations

import json
import re
import shutil
import socket
import ssl
import subprocess
import threading
import xmlrpc.client
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from creativeflow.adapters.odoo import (
    OdooAccessError,
    OdooAuthenticationError,
    OdooClient,
    OdooConfig,
    OdooServerError,
    OdooUnavailable,
    OdooUserError,
)
from creativeflow.adapters.odoo.client import make_transport
from creativeflow.adapters.odoo.config import RpcProtocol
from creativeflow.adapters.odoo.json2_transport import Json2Transport, json2_fault_kind
from creativeflow.adapters.odoo.jsonrpc_transport import fault_kind
from creativeflow.adapters.odoo.signatures import SERVICE_PARAMETERS
from creativeflow.adapters.odoo.transport import (
    TimeoutHTTPConnection,
    Timeouts,
    TransportFault,
    fault_for_http_status,
)

from .conftest import PROTOCOLS, Target, fresh_id, spec
from .gateway import GatewayStub


class SilentServer:
    """Accepts connections, reads, never answers: a hung Odoo."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self._accepted.append(connection)

    def close(self) -> None:
        self._listener.close()
        for connection in self._accepted:
            connection.close()


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


def _closed_port_url() -> str:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _config(url: str, protocol: RpcProtocol) -> OdooConfig:
    return OdooConfig(url, "db", "login", "secret", protocol, connect_timeout=2.0, read_timeout=0.2)


def test_a_connection_uses_the_connect_timeout_then_the_read_timeout(
    silent_server: SilentServer,
) -> None:
    port = int(silent_server.url.rsplit(":", 1)[1])
    connection = TimeoutHTTPConnection("127.0.0.1", port, timeouts=Timeouts(2.0, 0.2))

    assert connection.timeout == 2.0
    connection.connect()
    try:
        assert connection.sock.gettimeout() == 0.2
    finally:
        connection.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_hung_server_is_a_sent_fault_after_the_read_timeout(
    silent_server: SilentServer, protocol: RpcProtocol
) -> None:
    transport = make_transport(_config(silent_server.url, protocol))

    with pytest.raises(TransportFault) as fault:
        transport.login()

    assert fault.value.sent is True
    assert fault.value.retryable is True


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_closed_port_is_a_fault_before_sending(protocol: RpcProtocol) -> None:
    transport = make_transport(_config(_closed_port_url(), protocol))

    with pytest.raises(TransportFault) as fault:
        transport.login()

    assert fault.value.sent is False


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_unknown_host_is_a_fault_before_sending(protocol: RpcProtocol) -> None:
    transport = make_transport(_config("http://odoo.invalid:8069", protocol))

    with pytest.raises(TransportFault) as fault:
        transport.login()

    assert fault.value.sent is False


@pytest.mark.parametrize(
    ("status", "sent", "retryable"),
    [
        (502, True, True),
        (503, True, True),
        (504, True, True),
        (429, False, True),
        (404, False, False),
    ],
)
def test_http_statuses_from_a_gateway(status: int, sent: bool, retryable: bool) -> None:
    fault = fault_for_http_status(status, "reason")

    assert (fault.sent, fault.retryable) == (sent, retryable)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("odoo.exceptions.AccessDenied", "access_denied"),
        ("odoo.exceptions.AccessError", "access_error"),
        ("odoo.exceptions.UserError", "user_error"),
        ("odoo.exceptions.ValidationError", "user_error"),
        ("builtins.KeyError", "server_error"),
        ("psycopg2.OperationalError", "server_error"),
    ],
)
def test_json_rpc_error_names_map_to_fault_kinds(name: str, kind: str) -> None:
    assert fault_kind(name) == kind


class FaultingXmlRpcServer:
    """Logs anyone in, then answers every ``execute_kw`` with the fault it is told to."""

    def __init__(self) -> None:
        from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

        class AnyPath(SimpleXMLRPCRequestHandler):
            rpc_paths = ()

        self.fault: xmlrpc.client.Fault = xmlrpc.client.Fault(1, "boom")
        self._server = SimpleXMLRPCServer(
            ("127.0.0.1", 0), requestHandler=AnyPath, logRequests=False
        )
        self._server.register_function(lambda *_args: 7, "login")
        self._server.register_function(self._raise, "execute_kw")
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def _raise(self, *_args: object) -> None:
        raise self.fault

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (1, OdooServerError),
        (2, OdooUserError),
        (3, OdooAuthenticationError),
        (4, OdooAccessError),
        (99, OdooServerError),
    ],
)
def test_xml_rpc_fault_codes_map_to_adapter_errors_without_the_secret(
    code: int, error: type[Exception]
) -> None:
    server = FaultingXmlRpcServer()
    secret = "the-secret-api-key-42"
    server.fault = xmlrpc.client.Fault(code, f"Traceback (most recent call last):\nError: {secret}")
    transport = make_transport(
        OdooConfig(server.url, "db", "login", secret, "xmlrpc", read_timeout=5.0)
    )
    try:
        assert transport.login() == 7
        with pytest.raises(error) as raised:
            transport.execute_kw("creativeflow.credit.service", "debit", [], {})
    finally:
        server.close()

    assert type(raised.value) is error
    assert secret not in str(raised.value)
    assert "********" in str(raised.value)


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, ssl.SSLContext]:
    """A certificate for ``localhost`` (its PEM path) and a server context that presents it."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl command to make a certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    return str(cert), context


@pytest.fixture
def tls_gateway(target: Target, self_signed: tuple[str, ssl.SSLContext]) -> Iterator[GatewayStub]:
    stub = GatewayStub(target.url, tls=self_signed[1])
    yield stub
    stub.stop()


def test_https_works_on_every_protocol_when_the_certificate_is_trusted(
    monkeypatch: pytest.MonkeyPatch,
    self_signed: tuple[str, ssl.SSLContext],
    tls_gateway: GatewayStub,
    make_client: Callable[..., OdooClient],
    new_account: Callable[..., str],
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", self_signed[0])
    user = new_account(tier="pro", balance=100)
    client = make_client(url=tls_gateway.url)

    receipt = client.debit(user, fresh_id("req"), "samples", spec(), fresh_id("corr"))

    assert tls_gateway.url.startswith("https://")
    assert receipt.replay is False
    assert client.get_entitlements(user).balance == receipt.balance_after


def test_an_untrusted_certificate_is_unavailable_without_retries(
    tls_gateway: GatewayStub, make_client: Callable[..., OdooClient]
) -> None:
    sleeps: list[float] = []
    client = make_client(url=tls_gateway.url, max_attempts=3, sleep=sleeps.append)

    with pytest.raises(OdooUnavailable) as failed:
        client.authenticate()

    assert "CERTIFICATE_VERIFY_FAILED" in str(failed.value)
    assert sleeps == []
    assert tls_gateway.forwarded == 0


# -- JSON-2 on a scripted server ----------------------------------------------------------------


@dataclass(slots=True)
class _Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class ScriptedJson2Server:
    """Answers every request with one scripted (status, content type, body); records requests."""

    def __init__(self) -> None:
        self.status = 200
        self.content_type = "application/json; charset=utf-8"
        self.body = b"null"
        self.location: str | None = None
        self.received: list[_Received] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._serve()

            def do_POST(self) -> None:
                self._serve()

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                server.received.append(
                    _Received(
                        self.command,
                        self.path,
                        {name.lower(): value for name, value in self.headers.items()},
                        self.rfile.read(length),
                    )
                )
                self.send_response(server.status)
                self.send_header("Content-Type", server.content_type)
                if server.location:
                    self.send_header("Location", server.location)
                self.send_header("Content-Length", str(len(server.body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(server.body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def answer(self, status: int, document: object, content_type: str | None = None) -> None:
        self.status = status
        self.body = document if isinstance(document, bytes) else json.dumps(document).encode()
        self.content_type = content_type or "application/json; charset=utf-8"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def json2_server() -> Iterator[ScriptedJson2Server]:
    server = ScriptedJson2Server()
    yield server
    server.close()


JSON2_KEY = "the-secret-api-key-0123456789abcdef"


def _json2_config(url: str, **overrides: Any) -> OdooConfig:
    fields: dict[str, Any] = {"read_timeout": 5.0, "max_attempts": 1, **overrides}
    return OdooConfig(url, "creativeflow", "orchestrator", JSON2_KEY, "json2", **fields)


def _odoo_error(name: str, message: str, arguments: list[object]) -> dict[str, object]:
    return {
        "name": name,
        "message": message,
        "arguments": arguments,
        "context": {},
        "debug": f"Traceback (most recent call last):\n{name}: {message}\n",
    }


def test_json2_posts_named_arguments_with_the_key_and_the_database(
    json2_server: ScriptedJson2Server,
) -> None:
    json2_server.answer(
        200,
        {
            "ok": True,
            "code": "debited",
            "replay": False,
            "entry_id": 5,
            "user_id": "u-1",
            "request_id": "r-1",
            "action": "samples",
            "amount": 4,
            "balance_after": 96,
            "model": "creativeflow-draft-v1",
        },
    )
    client = OdooClient(_json2_config(json2_server.url))

    receipt = client.debit(
        "u-1", "r-1", "samples", spec(2, model="creativeflow-draft-v1", requests_in_flight=3), "c-1"
    )

    assert (receipt.amount, receipt.model) == (4, "creativeflow-draft-v1")
    (request,) = json2_server.received  # no login before the call: one request
    assert (request.method, request.path) == ("POST", "/json/2/creativeflow.credit.service/debit")
    assert request.headers["authorization"] == f"bearer {JSON2_KEY}"
    assert request.headers["x-odoo-database"] == "creativeflow"
    assert request.headers["content-type"].split(";")[0] == "application/json"
    assert request.headers["connection"] == "close"
    assert json.loads(request.body) == {
        "platform_user_id": "u-1",
        "request_id": "r-1",
        "action": "samples",
        "spec": {
            "format": "png",
            "width": 512,
            "height": 512,
            "samples": 2,
            "model": "creativeflow-draft-v1",
            "requests_in_flight": 3,
        },
        "correlation_id": "c-1",
    }


def test_json2_authenticate_asks_context_get_for_the_uid(
    json2_server: ScriptedJson2Server,
) -> None:
    json2_server.answer(200, {"lang": "en_US", "tz": "UTC", "uid": 42})

    assert OdooClient(_json2_config(json2_server.url)).authenticate() == 42
    (request,) = json2_server.received
    assert request.path == "/json/2/res.users/context_get"
    assert json.loads(request.body) == {}


def test_json2_version_reads_web_version_without_the_key(
    json2_server: ScriptedJson2Server,
) -> None:
    json2_server.answer(200, {"version_info": [19, 0, 0, "final", 0, ""], "version": "19.0"})
    transport = make_transport(_json2_config(json2_server.url))

    assert transport.version() == {
        "server_version": "19.0",
        "server_version_info": [19, 0, 0, "final", 0, ""],
    }
    (request,) = json2_server.received
    assert (request.method, request.path) == ("GET", "/web/version")
    assert "authorization" not in request.headers


@pytest.mark.parametrize(
    ("status", "name", "error"),
    [
        (401, "werkzeug.exceptions.Unauthorized", OdooAuthenticationError),
        (403, "odoo.exceptions.AccessDenied", OdooAuthenticationError),
        (403, "odoo.exceptions.AccessError", OdooAccessError),
        (422, "odoo.exceptions.UserError", OdooUserError),
        (422, "odoo.exceptions.ValidationError", OdooUserError),
        (422, "werkzeug.exceptions.UnprocessableEntity", OdooUserError),
        (404, "werkzeug.exceptions.NotFound", OdooServerError),
        (400, "werkzeug.exceptions.BadRequest", OdooServerError),
        (500, "builtins.KeyError", OdooServerError),
        (500, "psycopg2.OperationalError", OdooServerError),
    ],
)
def test_json2_error_bodies_map_to_adapter_errors_without_the_secret(
    json2_server: ScriptedJson2Server, status: int, name: str, error: type[Exception]
) -> None:
    message = f"refused {JSON2_KEY}"
    json2_server.answer(status, _odoo_error(name, message, [message]))
    transport = make_transport(_json2_config(json2_server.url))

    with pytest.raises(error) as raised:
        transport.execute_kw("creativeflow.credit.service", "get_entitlements", ["u-1"], {})

    assert type(raised.value) is error
    assert getattr(raised.value, "remote_name", None) == name
    assert f"HTTP {status}" in str(raised.value)
    assert JSON2_KEY not in str(raised.value)
    assert "********" in str(raised.value)


@pytest.mark.parametrize(
    ("status", "content_type", "sent", "retryable"),
    [
        (502, "text/html", True, True),
        (503, "text/html", True, True),
        (504, "text/html", True, True),
        (500, "text/plain", True, True),
        (429, "text/html", False, True),
        (404, "text/html", False, False),
        (415, "text/html", False, False),
        (502, "application/json", True, True),  # JSON, but not Odoo's error object
    ],
)
def test_json2_statuses_without_an_odoo_error_body_are_transport_faults(
    json2_server: ScriptedJson2Server, status: int, content_type: str, sent: bool, retryable: bool
) -> None:
    body = b'{"error": "bad gateway"}' if content_type == "application/json" else b"<html/>"
    json2_server.answer(status, body, content_type)
    transport = make_transport(_json2_config(json2_server.url))

    with pytest.raises(TransportFault) as fault:
        transport.execute_kw("creativeflow.credit.service", "get_entitlements", ["u-1"], {})

    assert (fault.value.sent, fault.value.retryable) == (sent, retryable)


ODOO_18_LOGIN_REDIRECT = "/web/login?redirect=%2Fjson%2F2%2Fres.users%2Fcontext_get%3F"
ODOO_LOGIN_PAGE = (
    b'<!DOCTYPE html><html><body><form class="oe_login_form" action="/web/login" '
    b'method="post"><input name="login"/></form></body></html>'
)


def test_json2_against_an_odoo_18_redirect_says_it_has_no_json2_api(
    json2_server: ScriptedJson2Server,
) -> None:
    """Odoo 18 sends /json/2 to its login page with a 303: the fault names the cause and the
    fix (not a parse error), is not retried, and applied nothing."""
    json2_server.answer(303, b"<!doctype html><title>Redirecting...</title>", "text/html")
    json2_server.location = ODOO_18_LOGIN_REDIRECT
    transport = make_transport(_json2_config(json2_server.url))

    with pytest.raises(TransportFault) as fault:
        transport.execute_kw("creativeflow.credit.service", "get_entitlements", ["u-1"], {})

    assert "no JSON-2 API" in str(fault.value) and "ODOO_PROTOCOL=xmlrpc" in str(fault.value)
    assert (fault.value.sent, fault.value.retryable) == (False, False)


def test_json2_a_login_page_answered_with_200_says_it_has_no_json2_api(
    json2_server: ScriptedJson2Server,
) -> None:
    """A proxy that follows the redirect hands over the login page itself, with a 200."""
    json2_server.answer(200, ODOO_LOGIN_PAGE, "text/html; charset=utf-8")
    transport = make_transport(_json2_config(json2_server.url))

    with pytest.raises(TransportFault) as fault:
        transport.execute_kw("creativeflow.credit.service", "debit", ["u-1"], {})

    assert "no JSON-2 API" in str(fault.value) and "not JSON" not in str(fault.value)
    assert (fault.value.sent, fault.value.retryable) == (False, False)


def test_json2_a_reply_that_is_not_json_is_a_sent_fault(
    json2_server: ScriptedJson2Server,
) -> None:
    json2_server.answer(200, b"<html>a captive portal</html>", "text/html")
    transport = make_transport(_json2_config(json2_server.url))

    with pytest.raises(TransportFault) as fault:
        transport.execute_kw("creativeflow.credit.service", "get_entitlements", ["u-1"], {})

    assert fault.value.sent is True


def test_json2_positional_arguments_of_an_unknown_method_are_refused_before_sending(
    json2_server: ScriptedJson2Server,
) -> None:
    transport = make_transport(_json2_config(json2_server.url))

    with pytest.raises(TypeError):
        transport.execute_kw("res.partner", "search", [[]], {})
    with pytest.raises(TypeError):
        transport.execute_kw("creativeflow.credit.service", "get_entitlements", ["u", "v"], {})
    with pytest.raises(TypeError):
        transport.execute_kw(
            "creativeflow.credit.service", "get_entitlements", ["u"], {"platform_user_id": "u"}
        )

    assert json2_server.received == []


def test_json2_timeouts_are_split_and_no_connection_is_kept(
    json2_server: ScriptedJson2Server,
) -> None:
    json2_server.answer(200, {"uid": 2})
    transport = Json2Transport(_json2_config(json2_server.url, connect_timeout=1.5))

    transport.login()
    http = transport._http()

    assert (http.timeout.connect, http.timeout.read) == (1.5, 5.0)
    assert json2_server.received[0].headers["connection"] == "close"


@pytest.mark.parametrize(
    ("status", "name", "kind"),
    [
        (401, "werkzeug.exceptions.Unauthorized", "access_denied"),
        (403, "odoo.exceptions.AccessDenied", "access_denied"),
        (403, "odoo.exceptions.AccessError", "access_error"),
        (422, "odoo.exceptions.UserError", "user_error"),
        (404, "odoo.exceptions.MissingError", "user_error"),
        (409, "odoo.exceptions.LockError", "user_error"),
        (404, "werkzeug.exceptions.NotFound", "server_error"),
        (500, "builtins.RuntimeError", "server_error"),
    ],
)
def test_json2_error_names_and_statuses_map_to_fault_kinds(
    status: int, name: str, kind: str
) -> None:
    assert json2_fault_kind(status, name) == kind


def test_json2_names_the_arguments_as_the_contract_readme_does() -> None:
    readme = Path(__file__).resolve().parents[2] / "odoo_contracts" / "README.md"
    section = readme.read_text(encoding="utf-8").split("\n## Public methods", 1)[1]
    section = section.split("\n## ", 1)[0]
    documented = {
        name: tuple(part.split("=", 1)[0].strip() for part in arguments.split(",") if part.strip())
        for name, arguments in re.findall(r"^### `(\w+)\((.*)\)`", section, flags=re.MULTILINE)
    }

    assert documented == SERVICE_PARAMETERS

"""The two transports on raw sockets: split timeouts, and "never reached" told from "no reply"."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
import xmlrpc.client
from collections.abc import Callable, Iterator

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
from creativeflow.adapters.odoo.jsonrpc_transport import fault_kind
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


def test_https_works_on_both_protocols_when_the_certificate_is_trusted(
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

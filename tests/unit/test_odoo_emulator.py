"""The Odoo emulator, exercised over real HTTP with plain clients (xmlrpc.client, urllib, odoorpc).

These tests pin the wire shapes a real Odoo 18 gives (results, faults, JSON-RPC errors) and those
of Odoo 19's JSON-2 API (statuses, error bodies, bearer keys), the credit contract of
``odoo_contracts/README.md`` (codes, tier reasons and their order, the cap on unfinished
requests, replay, refund, ledger lookups), thread safety, and each fault knob on every protocol.
They never use the product's own Odoo adapter: the emulator is what that adapter is tested
against.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import xmlrpc.client
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import odoorpc
import pytest

from creativeflow_devstack.odoo_emulator import (
    OdooEmulator,
    SeedError,
    default_seed_path,
    load_seed,
    parse_seed,
)
from creativeflow_devstack.odoo_emulator.ledger import CreditLedger

DB = "creativeflow"
LOGIN = "orchestrator"
PASSWORD = "orchestrator"
SERVICE = "creativeflow.credit.service"
DEBIT = f"{SERVICE}.debit"
PNG_4 = {"format": "png", "width": 1024, "height": 1024, "samples": 4, "advanced_model": False}
PRIVATE_TEXT = (
    "Private methods (such as 'creativeflow.credit.service._lock_account') "
    "cannot be called remotely."
)


# -- fixtures and helpers ----------------------------------------------------------------------


@pytest.fixture
def emu(request: pytest.FixtureRequest) -> Iterator[OdooEmulator]:
    """Odoo 18 (the addon's version); ``test_json2_*`` tests get an emulator claiming Odoo 19, the
    first version with JSON-2."""
    version = "19.0" if request.node.name.startswith("test_json2_") else "18.0"
    with OdooEmulator(server_version=version) as emulator:
        yield emulator


@pytest.fixture
def api_key(emu: OdooEmulator) -> str:
    orchestrator = next(user for user in emu.seed.users if user.login == LOGIN)
    return orchestrator.api_keys[0]


@contextlib.contextmanager
def proxy(emu: OdooEmulator, service: str) -> Iterator[xmlrpc.client.ServerProxy]:
    with xmlrpc.client.ServerProxy(f"{emu.url}/xmlrpc/2/{service}") as server:
        yield server


def login(emu: OdooEmulator, user: str = LOGIN, secret: str = PASSWORD) -> Any:
    with proxy(emu, "common") as common:
        return common.login(DB, user, secret)


def call(emu: OdooEmulator, method: str, *args: Any, secret: str = PASSWORD, **kwargs: Any) -> Any:
    """``execute_kw`` on the credit service as the orchestrator, over XML-RPC."""
    with proxy(emu, "object") as obj:
        return obj.execute_kw(DB, 2, secret, SERVICE, method, list(args), kwargs)


def debit(
    emu: OdooEmulator,
    user: str,
    request_id: str,
    action: str = "samples",
    spec: dict[str, Any] | None = None,
    **kwargs: Any,
) -> Any:
    return call(emu, "debit", user, request_id, action, PNG_4 if spec is None else spec, **kwargs)


def fault_of(emu: OdooEmulator, *params: Any, method: str = "execute_kw") -> xmlrpc.client.Fault:
    with proxy(emu, "object") as obj, pytest.raises(xmlrpc.client.Fault) as caught:
        getattr(obj, method)(*params)
    return caught.value


def post(
    url: str, body: bytes, content_type: str = "application/json"
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), error.read()


def jsonrpc(
    emu: OdooEmulator, service: str, method: str, args: list[Any], request_id: int = 7
) -> tuple[int, dict[str, Any]]:
    envelope = {
        "jsonrpc": "2.0",
        "method": "call",
        "id": request_id,
        "params": {"service": service, "method": method, "args": args},
    }
    status, _, body = post(f"{emu.url}/jsonrpc", json.dumps(envelope).encode())
    return status, json.loads(body)


def control(emu: OdooEmulator, route: str, document: Any = None) -> tuple[int, Any]:
    url = f"{emu.url}/__emulator__/{route}"
    if document is None:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            with error:
                return error.code, json.loads(error.read())
    status, _, body = post(url, json.dumps(document).encode())
    return status, json.loads(body)


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


# -- the wire: version, login, results, faults ------------------------------------------------


def test_version_is_odoo_18_on_xmlrpc_and_version_info(emu: OdooEmulator) -> None:
    expected = {
        "server_version": "18.0",
        "server_version_info": [18, 0, 0, "final", 0, ""],
        "server_serie": "18.0",
        "protocol_version": 1,
    }
    with proxy(emu, "common") as common:
        assert common.version() == expected
    status, _, body = post(
        f"{emu.url}/web/webclient/version_info",
        b'{"jsonrpc": "2.0", "method": "call", "params": {}, "id": 3}',
    )
    assert status == 200
    assert json.loads(body) == {"jsonrpc": "2.0", "id": 3, "result": expected}


def test_login_answers_the_uid_or_false(emu: OdooEmulator) -> None:
    assert login(emu) == 2
    assert login(emu, secret="wrong") is False
    assert login(emu, user="nobody") is False
    assert login(emu, user="auditor", secret="auditor") == 3


def test_authenticate_takes_a_user_agent_env(emu: OdooEmulator) -> None:
    with proxy(emu, "common") as common:
        assert common.authenticate(DB, LOGIN, PASSWORD, {}) == 2
        assert common.authenticate(DB, LOGIN, "wrong", {"base_location": "x"}) is False


def test_an_api_key_works_wherever_the_password_does(emu: OdooEmulator, api_key: str) -> None:
    assert login(emu, secret=api_key) == 2
    result = call(emu, "get_entitlements", "demo-user", secret=api_key)
    assert result["ok"] is True
    with proxy(emu, "common") as common:
        assert common.authenticate(DB, LOGIN, api_key, {}) == 2


def test_an_unknown_database_is_an_application_error(emu: OdooEmulator) -> None:
    with proxy(emu, "common") as common, pytest.raises(xmlrpc.client.Fault) as caught:
        common.login("nope", LOGIN, PASSWORD)
    assert caught.value.faultCode == 1
    assert 'database "nope" does not exist' in caught.value.faultString
    fault = fault_of(emu, "nope", 2, PASSWORD, SERVICE, "get_entitlements", ["demo-user"])
    assert fault.faultCode == 1


def test_execute_kw_debit_returns_the_contract_result(emu: OdooEmulator) -> None:
    result = debit(emu, "demo-user", "req-1", correlation_id="corr-1")
    assert result == {
        "ok": True,
        "code": "debited",
        "replay": False,
        "entry_id": 1,
        "user_id": "demo-user",
        "request_id": "req-1",
        "action": "samples",
        "amount": 8,
        "balance_after": 492,
        "model": "creativeflow-standard-v1",
    }
    assert emu.balance("demo-user") == 492


def test_xmlrpc_answers_a_method_response_and_closes_the_connection(emu: OdooEmulator) -> None:
    body = xmlrpc.client.dumps((DB, LOGIN, PASSWORD), "login").encode()
    with socket.create_connection(("127.0.0.1", emu.port), timeout=5) as sock:
        sock.sendall(
            b"POST /xmlrpc/2/common HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n"
            b"Content-Type: text/xml\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        raw = b""
        while chunk := sock.recv(65536):  # ends only if the server closes the connection
            raw += chunk
    head, _, payload = raw.partition(b"\r\n\r\n")
    assert b"200 OK" in head.split(b"\r\n")[0]
    assert b"Connection: close" in head
    assert b"Content-Type: text/xml" in head
    assert xmlrpc.client.loads(payload) == ((2,), None)
    assert b"<methodResponse>" in payload


def test_a_wrong_password_on_a_call_is_fault_3(emu: OdooEmulator) -> None:
    fault = fault_of(emu, DB, 2, "wrong", SERVICE, "get_entitlements", ["demo-user"])
    assert (fault.faultCode, fault.faultString) == (3, "Access Denied")
    fault = fault_of(emu, DB, 99, PASSWORD, SERVICE, "get_entitlements", ["demo-user"])
    assert fault.faultCode == 3


def test_a_private_method_is_fault_4_with_odoos_text(emu: OdooEmulator) -> None:
    fault = fault_of(emu, DB, 2, PASSWORD, SERVICE, "_lock_account", [])
    assert (fault.faultCode, fault.faultString) == (4, PRIVATE_TEXT)
    fault = fault_of(emu, DB, 2, PASSWORD, "res.users", "init", [])
    assert fault.faultCode == 4


def test_a_caller_outside_the_orchestrator_group_gets_fault_4(emu: OdooEmulator) -> None:
    fault = fault_of(emu, DB, 3, "auditor", SERVICE, "ledger_by_requests", [["r"]])
    assert (fault.faultCode, fault.faultString) == (
        4,
        "Only members of CreativeFlow / Orchestrator may call the credit service.",
    )
    assert emu.request_count(model_method=f"{SERVICE}.ledger_by_requests") == 1


def test_unknown_methods_and_models_fail_as_in_odoo(emu: OdooEmulator) -> None:
    fault = fault_of(emu, DB, 2, PASSWORD, SERVICE, "debit_everything", [])
    assert fault.faultCode == 1
    assert fault.faultString.startswith("Traceback (most recent call last):")
    assert fault.faultString.rstrip().endswith(
        f"AttributeError: The method 'debit_everything' does not exist on the model '{SERVICE}'"
    )
    fault = fault_of(emu, DB, 2, PASSWORD, "no.such.model", "read", [])
    assert (fault.faultCode, fault.faultString) == (2, "Object no.such.model doesn't exist")


def test_arguments_that_do_not_fit_are_fault_1(emu: OdooEmulator) -> None:
    fault = fault_of(emu, DB, 2, PASSWORD, SERVICE, "debit", ["demo-user"])
    assert fault.faultCode == 1
    assert "TypeError" in fault.faultString
    fault = fault_of(emu, DB, 2, PASSWORD, SERVICE, "get_entitlements", ["u"], {"colour": 1})
    assert fault.faultCode == 1
    assert emu.ledger() == []


def test_execute_passes_positional_arguments(emu: OdooEmulator) -> None:
    with proxy(emu, "object") as obj:
        result: Any = obj.execute(
            DB, 2, PASSWORD, SERVICE, "debit", "demo-user", "req-x", "final", PNG_4, "corr-x"
        )
        context = obj.execute(DB, 2, PASSWORD, "res.users", "context_get")
    assert (result["code"], result["amount"]) == ("debited", 10)
    assert emu.ledger()[0]["correlation_id"] == "corr-x"
    assert context == {"lang": "en_US", "tz": "UTC", "uid": 2}


def test_a_context_kwarg_is_accepted_like_odoo(emu: OdooEmulator) -> None:
    result = debit(emu, "demo-user", "req-c", context={"lang": "fr_FR"})
    assert result["code"] == "debited"


# -- JSON-RPC --------------------------------------------------------------------------------


def test_jsonrpc_login_and_call(emu: OdooEmulator) -> None:
    assert jsonrpc(emu, "common", "login", [DB, LOGIN, PASSWORD]) == (
        200,
        {"jsonrpc": "2.0", "id": 7, "result": 2},
    )
    assert jsonrpc(emu, "common", "login", [DB, LOGIN, "bad"])[1]["result"] is False
    status, document = jsonrpc(
        emu,
        "object",
        "execute_kw",
        [DB, 2, PASSWORD, SERVICE, "debit", ["demo-user", "req-j", "samples", PNG_4]],
    )
    assert status == 200
    assert document["result"]["code"] == "debited"


def test_jsonrpc_errors_come_with_http_200_and_odoos_envelope(emu: OdooEmulator) -> None:
    status, document = jsonrpc(
        emu,
        "object",
        "execute_kw",
        [DB, 2, "wrong", SERVICE, "get_entitlements", ["u"]],
        request_id=41,
    )
    assert status == 200
    assert document["jsonrpc"] == "2.0"
    assert document["id"] == 41
    assert "result" not in document
    error = document["error"]
    assert (error["code"], error["message"]) == (200, "Odoo Server Error")
    data = error["data"]
    assert data["name"] == "odoo.exceptions.AccessDenied"
    assert data["message"] == "Access Denied"
    assert data["arguments"] == ["Access Denied"]
    assert data["context"] == {}
    assert "AccessDenied" in data["debug"]


@pytest.mark.parametrize(
    ("model", "method", "name"),
    [
        (SERVICE, "_lock_account", "odoo.exceptions.AccessError"),
        (SERVICE, "nope", "builtins.AttributeError"),
        ("no.such.model", "read", "odoo.exceptions.UserError"),
    ],
)
def test_jsonrpc_error_names(emu: OdooEmulator, model: str, method: str, name: str) -> None:
    _, document = jsonrpc(emu, "object", "execute_kw", [DB, 2, PASSWORD, model, method, []])
    assert document["error"]["data"]["name"] == name


def test_jsonrpc_refuses_bad_bodies_at_the_http_level(emu: OdooEmulator) -> None:
    assert post(f"{emu.url}/jsonrpc", b"{not json")[0] == 400
    assert post(f"{emu.url}/jsonrpc", b"[1, 2]")[0] == 400
    assert post(f"{emu.url}/jsonrpc", b"{}", content_type="text/plain")[0] == 400
    status, _, body = post(f"{emu.url}/jsonrpc", b'{"jsonrpc": "2.0", "params": {}, "id": 1}')
    assert status == 200
    assert json.loads(body)["error"]["data"]["name"] == "builtins.TypeError"


def test_other_paths_and_methods_are_404_and_405(emu: OdooEmulator) -> None:
    assert post(f"{emu.url}/web/session/authenticate", b"{}")[0] == 404
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(f"{emu.url}/xmlrpc/2/common", timeout=5)
    with caught.value:
        assert caught.value.code == 405
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(f"{emu.url}/nothing-here", timeout=5)
    with caught.value:
        assert caught.value.code == 404


# -- odoorpc ---------------------------------------------------------------------------------


def test_odoorpc_connects_logs_in_and_calls_execute_kw(emu: OdooEmulator) -> None:
    odoo = odoorpc.ODOO("127.0.0.1", port=emu.port, protocol="jsonrpc", timeout=10)
    assert odoo.version == "18.0"
    odoo.login(DB, LOGIN, PASSWORD)
    assert odoo.env.uid == 2
    assert odoo.env.context["lang"] == "en_US"
    result = odoo.execute_kw(
        SERVICE, "debit", ["demo-user", "req-o", "samples", PNG_4], {"correlation_id": "corr-o"}
    )
    assert (result["code"], result["amount"], result["balance_after"]) == ("debited", 8, 492)
    assert emu.request_count(path="/web/webclient/version_info") == 1
    assert emu.request_count(model_method="res.users.context_get") == 1


def test_odoorpc_with_an_api_key_and_its_errors(emu: OdooEmulator, api_key: str) -> None:
    odoo = odoorpc.ODOO("127.0.0.1", port=emu.port, protocol="jsonrpc", timeout=10)
    with pytest.raises(odoorpc.error.RPCError):
        odoo.login(DB, LOGIN, "wrong")
    odoo.login(DB, LOGIN, api_key)
    assert odoo.execute_kw(SERVICE, "get_entitlements", ["free-user"])["balance"] == 20
    with pytest.raises(odoorpc.error.RPCError) as caught:
        odoo.execute_kw(SERVICE, "_private", [])
    assert caught.value.info["data"]["name"] == "odoo.exceptions.AccessError"


# -- JSON-2 (Odoo 19) -------------------------------------------------------------------------

JSON2_DEBIT = f"/json/2/{SERVICE}/debit"


@pytest.fixture
def auditor_key(emu: OdooEmulator) -> str:
    return next(user for user in emu.seed.users if user.login == "auditor").api_keys[0]


def json2_request(
    emu: OdooEmulator,
    path: str,
    body: Any = None,
    *,
    key: str | None,
    method: str = "POST",
    content_type: str | None = "application/json",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    """One raw request; the answer's status, headers (lower-case) and body (JSON when it is)."""
    sent = {"X-Odoo-Database": DB, **(headers or {})}
    if key is not None:
        sent["Authorization"] = f"bearer {key}"
    if content_type is not None:
        sent["Content-Type"] = content_type
    raw = (
        body if isinstance(body, bytes) else json.dumps(body).encode() if body is not None else None
    )
    connection = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=10)
    try:
        connection.request(method, path, raw, sent)
        response = connection.getresponse()
        answer = response.read()
        got = {name.lower(): value for name, value in response.getheaders()}
    finally:
        connection.close()
    if got.get("content-type", "").startswith("application/json"):
        return response.status, got, json.loads(answer)
    return response.status, got, answer.decode()


def json2_debit(emu: OdooEmulator, key: str, request_id: str, **spec_change: Any) -> Any:
    body = {
        "platform_user_id": "demo-user",
        "request_id": request_id,
        "action": "samples",
        "spec": {**PNG_4, **spec_change},
        "correlation_id": "corr-j",
    }
    return json2_request(emu, JSON2_DEBIT, body, key=key)


def assert_odoo_error(answer: Any, name: str, message: str | None = None) -> None:
    assert set(answer) == {"name", "message", "arguments", "context", "debug"}
    assert answer["name"] == name
    assert answer["context"] == {}
    if message is not None:
        assert answer["message"] == message


def test_json2_debit_answers_the_bare_result_with_http_200(emu: OdooEmulator, api_key: str) -> None:
    status, headers, answer = json2_debit(emu, api_key, "req-j1")
    assert status == 200
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert headers["connection"] == "close"
    assert answer == {
        "ok": True,
        "code": "debited",
        "replay": False,
        "entry_id": 1,
        "user_id": "demo-user",
        "request_id": "req-j1",
        "action": "samples",
        "amount": 8,
        "balance_after": 492,
        "model": "creativeflow-standard-v1",
    }
    assert emu.ledger()[0]["correlation_id"] == "corr-j"


def test_json2_context_get_names_the_keys_user(
    emu: OdooEmulator, api_key: str, auditor_key: str
) -> None:
    path = "/json/2/res.users/context_get"
    assert json2_request(emu, path, {}, key=api_key)[2]["uid"] == 2
    assert json2_request(emu, path, {}, key=auditor_key)[2]["uid"] == 3
    # no body at all is an empty set of arguments
    assert json2_request(emu, path, None, key=api_key)[0] == 200


NO_KEY = "User not authenticated, use an API Key with a Bearer Authorization header."


@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        (None, NO_KEY),
        ("Basic b3JjaGVzdHJhdG9yOm9yY2hlc3RyYXRvcg==", NO_KEY),  # not a bearer token at all
        ("bearer wrong-key", "Invalid apikey"),
        (f"bearer {PASSWORD}", "Invalid apikey"),  # a password is not an API key
    ],
)
def test_json2_refuses_a_missing_or_wrong_key_with_401(
    emu: OdooEmulator, authorization: str | None, message: str
) -> None:
    headers = {"Authorization": authorization} if authorization else None
    status, got, answer = json2_request(emu, JSON2_DEBIT, {}, key=None, headers=headers)
    assert status == 401
    assert got["www-authenticate"].lower() == "bearer"
    assert_odoo_error(answer, "werkzeug.exceptions.Unauthorized", message)
    assert answer["arguments"] == [message, 401]
    assert emu.ledger() == []


def test_json2_takes_the_bearer_scheme_in_any_case(emu: OdooEmulator, api_key: str) -> None:
    status, _, answer = json2_request(
        emu, JSON2_DEBIT, {}, key=None, headers={"Authorization": f"BEARER  {api_key}"}
    )
    assert status == 422  # past authentication: the arguments are missing
    assert answer["name"] == "werkzeug.exceptions.UnprocessableEntity"


def test_json2_wrong_database_is_a_bare_404_and_no_header_is_the_single_database(
    emu: OdooEmulator, api_key: str
) -> None:
    status, got, _ = json2_request(
        emu, JSON2_DEBIT, {}, key=api_key, headers={"X-Odoo-Database": "other"}
    )
    assert status == 404
    assert not got["content-type"].startswith("application/json")
    connection = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=10)
    try:
        connection.request(
            "POST",
            "/json/2/res.users/context_get",
            b"{}",
            {"Authorization": f"bearer {api_key}", "Content-Type": "application/json"},
        )
        assert connection.getresponse().status == 200
    finally:
        connection.close()


def test_json2_refuses_another_content_type_with_415_before_authentication(
    emu: OdooEmulator,
) -> None:
    status, got, answer = json2_request(
        emu, JSON2_DEBIT, b"{}", key="wrong", content_type="text/plain"
    )
    assert status == 415
    assert got["accept"] == "application/json"
    assert "type='/json/2/rpc'" in answer


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "could not parse the body as json"),
        (b"[1, 2]", "could not parse the body, expecting a json object"),
    ],
)
def test_json2_a_body_that_is_not_a_json_object_is_400(
    emu: OdooEmulator, api_key: str, body: bytes, message: str
) -> None:
    status, _, answer = json2_request(emu, JSON2_DEBIT, body, key=api_key)
    assert status == 400
    assert answer["name"] == "werkzeug.exceptions.BadRequest"
    assert answer["message"].startswith(message)


@pytest.mark.parametrize(
    ("path", "body", "status", "name", "message"),
    [
        (
            "/json/2/no.such.model/search",
            {},
            404,
            "werkzeug.exceptions.NotFound",
            "the model 'no.such.model' does not exist",
        ),
        (
            f"/json/2/{SERVICE}/search_read",
            {},
            404,
            "werkzeug.exceptions.NotFound",
            f"The method '{SERVICE}.search_read' does not exist",
        ),
        (
            f"/json/2/{SERVICE}/_lock_account",
            {},
            403,
            "odoo.exceptions.AccessError",
            PRIVATE_TEXT,
        ),
        (
            f"/json/2/{SERVICE}/get_entitlements",
            {"ids": [1], "platform_user_id": "demo-user"},
            422,
            "werkzeug.exceptions.UnprocessableEntity",
            f"cannot call {SERVICE}.get_entitlements with ids",
        ),
        (
            f"/json/2/{SERVICE}/get_entitlements",
            {"user": "demo-user"},
            422,
            "werkzeug.exceptions.UnprocessableEntity",
            None,
        ),
        ("/json/2/res.partner", {}, 404, "werkzeug.exceptions.NotFound", None),
    ],
)
def test_json2_routes_models_and_methods_fail_as_in_odoo_19(
    emu: OdooEmulator,
    api_key: str,
    path: str,
    body: Any,
    status: int,
    name: str,
    message: str | None,
) -> None:
    got_status, _, answer = json2_request(emu, path, body, key=api_key)
    assert got_status == status
    assert_odoo_error(answer, name, message)


def test_json2_other_verbs_are_pointed_to_post(emu: OdooEmulator, api_key: str) -> None:
    status, _, answer = json2_request(emu, JSON2_DEBIT, None, key=api_key, method="GET")
    assert status == 404
    assert answer["message"] == "Did you mean POST /json/2/<model>/<method>?"


def test_json2_context_and_named_arguments(emu: OdooEmulator, api_key: str) -> None:
    body = {"context": {"lang": "fr_FR"}, "platform_user_id": "demo-user"}
    status, _, answer = json2_request(emu, f"/json/2/{SERVICE}/get_entitlements", body, key=api_key)
    assert (status, answer["balance"]) == (200, 500)


def test_json2_a_caller_outside_the_orchestrator_group_gets_403(
    emu: OdooEmulator, auditor_key: str
) -> None:
    status, _, answer = json2_debit(emu, auditor_key, "req-a")
    assert status == 403
    assert answer["name"] == "odoo.exceptions.AccessError"
    assert emu.ledger() == []


def test_json2_business_refusals_are_results_with_http_200(emu: OdooEmulator, api_key: str) -> None:
    status, _, answer = json2_debit(emu, api_key, "req-f", format="bmp")
    assert status == 200
    assert (answer["code"], answer["reason"]) == ("tier_forbids", "format_not_allowed")


def test_json2_fail_next_is_a_500_that_applies_nothing(emu: OdooEmulator, api_key: str) -> None:
    emu.faults.fail_next(1, model_method=DEBIT)
    status, _, answer = json2_debit(emu, api_key, "req-x")
    assert status == 500
    assert answer["name"] == "builtins.RuntimeError"
    assert emu.ledger() == []
    assert json2_debit(emu, api_key, "req-x")[2]["replay"] is False


def test_json2_a_lost_reply_is_applied_but_never_answered(emu: OdooEmulator, api_key: str) -> None:
    emu.faults.lose_reply_next(1, model_method=DEBIT)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        json2_debit(emu, api_key, "req-l")
    assert emu.balance("demo-user") == 492
    assert json2_debit(emu, api_key, "req-l")[2]["replay"] is True


def test_json2_refused_connections_and_latency(emu: OdooEmulator, api_key: str) -> None:
    emu.faults.refuse_connections(True)
    with pytest.raises(ConnectionRefusedError):
        json2_debit(emu, api_key, "req-n")
    emu.faults.refuse_connections(False)
    emu.faults.latency = 0.03
    assert json2_debit(emu, api_key, "req-n")[0] == 200


def test_json2_requests_are_counted_by_path_and_model_method(
    emu: OdooEmulator, api_key: str
) -> None:
    json2_debit(emu, api_key, "req-1")
    json2_debit(emu, "wrong-key", "req-2")
    json2_request(emu, "/json/2/res.users/context_get", {}, key=api_key)
    assert emu.request_count() == 3
    assert emu.request_count(path=JSON2_DEBIT) == 2
    assert emu.request_count(path=JSON2_DEBIT, model_method=DEBIT) == 2
    assert emu.request_count(model_method="res.users.context_get") == 1
    assert emu.request_count(service_method="common.login") == 0


def test_json2_web_version_answers_without_a_key(emu: OdooEmulator) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=10)
    try:
        connection.request("GET", "/web/version")
        response = connection.getresponse()
        answer = json.loads(response.read())
    finally:
        connection.close()
    assert response.status == 200
    assert answer == {"version_info": [19, 0, 0, "final", 0, ""], "version": "19.0"}
    assert emu.request_count(path="/web/version") == 1


def test_json2_an_emulator_claiming_19_says_so_on_every_route(emu: OdooEmulator) -> None:
    with proxy(emu, "common") as common:
        assert common.version()["server_version_info"] == [19, 0, 0, "final", 0, ""]
    with proxy(emu, "db") as db:
        assert db.server_version() == "19.0"
    assert emu.server_version == "19.0"


def test_claiming_odoo_18_it_sends_json2_to_the_login_page_as_odoo_18_does(
    emu: OdooEmulator, api_key: str
) -> None:
    """Odoo 18 has no JSON-2: its ``/json/<path>`` route (``auth='user'``) answers a caller
    without a session with a 303 to the login page, whatever the key; nothing is applied."""
    balance = emu.balance("demo-user")
    status, headers, answer = json2_debit(emu, api_key, "req-18")
    assert status == 303
    assert headers["location"] == (
        "/web/login?redirect=%2Fjson%2F2%2Fcreativeflow.credit.service%2Fdebit%3F"
    )
    assert headers["content-type"].startswith("text/html")
    assert "Redirecting..." in answer
    assert emu.balance("demo-user") == balance and not emu.ledger()


def test_claiming_odoo_18_it_has_no_web_version_page(emu: OdooEmulator) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=10)
    try:
        connection.request("GET", "/web/version")
        response = connection.getresponse()
        response.read()
    finally:
        connection.close()
    assert response.status == 404


def test_a_version_that_is_not_major_dot_minor_is_refused() -> None:
    from creativeflow_devstack.odoo_emulator.versions import VersionError

    for text in ("19", "v19.0", "", "19.0.1"):
        with pytest.raises(VersionError):
            OdooEmulator(server_version=text)


# -- the contract: entitlements, debit, refund, ledger ----------------------------------------


def test_entitlements_of_a_user(emu: OdooEmulator) -> None:
    assert call(emu, "get_entitlements", "demo-user") == {
        "ok": True,
        "code": "ok",
        "user_id": "demo-user",
        "tier": {"code": "pro", "name": "Pro"},
        "limits": {
            "formats": ["png", "jpeg", "webp"],
            "max_width": 4096,
            "max_height": 4096,
            "max_samples_per_request": 8,
            "models": [
                "creativeflow-standard-v1",
                "creativeflow-draft-v1",
                "creativeflow-advanced-v1",
            ],
            "default_model": "creativeflow-standard-v1",
            "advanced_models": True,
            "max_requests_in_flight": 10,
        },
        "prices": {"sample": 2, "final": 10, "regeneration_sample": 1},
        "balance": 500,
    }
    assert call(emu, "get_entitlements", "ghost") == {"ok": False, "code": "unknown_account"}
    refused = call(emu, "get_entitlements", 42)
    assert (refused["code"], bool(refused["detail"])) == ("invalid_request", True)


@pytest.mark.parametrize(
    ("action", "spec_change", "amount"),
    [
        ("samples", {"samples": 3}, 6),
        ("final", {"samples": 1}, 10),
        ("regeneration-1", {"samples": 5}, 5),
        ("regeneration-12", {"samples": 2}, 2),
        ("final-2", {"samples": 1}, 10),
        ("final-15", {"samples": 1}, 10),
    ],
)
def test_debit_prices_each_action(
    emu: OdooEmulator, action: str, spec_change: dict[str, Any], amount: int
) -> None:
    result = debit(emu, "demo-user", "req-p", action, {**PNG_4, **spec_change})
    assert (result["code"], result["amount"], result["balance_after"]) == (
        "debited",
        amount,
        500 - amount,
    )
    [entry] = emu.ledger()
    assert (entry["operation"], entry["action"], entry["amount"]) == ("debit", action, amount)


@pytest.mark.parametrize("action", ["final", "final-3"])
def test_final_is_not_checked_for_samples(emu: OdooEmulator, action: str) -> None:
    result = debit(emu, "free-user", "req-f", action, {**PNG_4, "samples": 9})
    assert (result["code"], result["amount"]) == ("debited", 5)


def test_formats_compare_without_case(emu: OdooEmulator) -> None:
    result = debit(emu, "demo-user", "req-case", spec={**PNG_4, "format": "PNG"})
    assert result["code"] == "debited"


def test_a_repeated_debit_replays_the_first_result(emu: OdooEmulator) -> None:
    first = debit(emu, "demo-user", "req-r")
    emu_spec_now_refused = {**PNG_4, "format": "bmp", "samples": 8}
    again = debit(emu, "demo-user", "req-r", spec=emu_spec_now_refused)
    assert again == {**first, "replay": True}
    assert emu.balance("demo-user") == 492
    assert len(emu.ledger()) == 1


def test_the_same_request_on_another_account_is_a_conflict(emu: OdooEmulator) -> None:
    debit(emu, "demo-user", "req-shared")
    result = debit(emu, "free-user", "req-shared", spec={**PNG_4, "samples": 2})
    assert result["ok"] is False
    assert result["code"] == "request_conflict"
    assert isinstance(result["detail"], str)
    assert emu.balance("free-user") == 20


@pytest.mark.parametrize(
    ("user", "spec_change", "reason"),
    [
        ("demo-user", {"format": "tiff"}, "format_not_allowed"),
        ("demo-user", {"width": 4097}, "resolution_not_allowed"),
        ("demo-user", {"height": 5000}, "resolution_not_allowed"),
        ("demo-user", {"samples": 9}, "too_many_samples"),
        ("free-user", {"samples": 1, "advanced_model": True}, "model_not_allowed"),
        # the first failing rule wins, in the README's order
        (
            "free-user",
            {"format": "webp", "width": 2048, "samples": 9, "advanced_model": True},
            "format_not_allowed",
        ),
        (
            "free-user",
            {"width": 2048, "samples": 9, "advanced_model": True},
            "resolution_not_allowed",
        ),
        ("free-user", {"samples": 9, "advanced_model": True}, "too_many_samples"),
    ],
)
def test_each_tier_reason(
    emu: OdooEmulator, user: str, spec_change: dict[str, Any], reason: str
) -> None:
    result = debit(emu, user, "req-t", spec={**PNG_4, **spec_change})
    tier = "pro" if user == "demo-user" else "free"
    assert result["ok"] is False
    assert (result["code"], result["reason"], result["tier"]) == ("tier_forbids", reason, tier)
    assert isinstance(result["detail"], str)
    assert emu.ledger() == []


# the cap on unfinished requests: free allows 2, pro 10


def test_at_the_cap_of_unfinished_requests_samples_are_refused_with_the_figures(
    emu: OdooEmulator,
) -> None:
    result = debit(emu, "free-user", "req-c", spec={**PNG_4, "samples": 1, "requests_in_flight": 2})
    assert result == {
        "ok": False,
        "code": "tier_forbids",
        "reason": "too_many_requests_in_flight",
        "tier": "free",
        "detail": result["detail"],
        "requests_in_flight": 2,
        "max_requests_in_flight": 2,
    }
    assert isinstance(result["detail"], str)
    assert emu.ledger() == []


@pytest.mark.parametrize(
    ("action", "in_flight", "code"),
    [
        ("samples", 1, "debited"),  # one below the cap
        ("samples", 7, "tier_forbids"),  # beyond it
        ("regeneration-1", 7, "debited"),  # only a new request is capped
        ("final", 7, "debited"),
        ("final-2", 7, "debited"),
    ],
)
def test_the_cap_applies_to_new_requests_only(
    emu: OdooEmulator, action: str, in_flight: int, code: str
) -> None:
    spec = {**PNG_4, "samples": 1, "requests_in_flight": in_flight}
    assert debit(emu, "free-user", "req-c", action, spec)["code"] == code


def test_without_the_key_the_cap_is_not_checked(emu: OdooEmulator) -> None:
    assert debit(emu, "free-user", "req-c", spec={**PNG_4, "samples": 1})["code"] == "debited"


def test_the_cap_is_the_last_tier_rule_and_comes_before_the_balance(emu: OdooEmulator) -> None:
    emu.add_account("broke", tier="free", balance=0)
    capped = {**PNG_4, "samples": 1, "requests_in_flight": 2}
    advanced = debit(emu, "broke", "req-a", spec={**capped, "advanced_model": True})
    assert advanced["reason"] == "model_not_allowed"
    assert "requests_in_flight" not in advanced
    assert debit(emu, "broke", "req-b", spec=capped)["reason"] == "too_many_requests_in_flight"


def test_a_replay_ignores_the_cap(emu: OdooEmulator) -> None:
    first = debit(emu, "free-user", "req-r", spec={**PNG_4, "samples": 1, "requests_in_flight": 0})
    again = debit(emu, "free-user", "req-r", spec={**PNG_4, "samples": 1, "requests_in_flight": 9})
    assert again == {**first, "replay": True}


@pytest.mark.parametrize("bad", [-1, "2", 1.5, True, False, [1], {"n": 1}])
def test_a_requests_in_flight_that_is_not_a_count_is_an_invalid_request(
    emu: OdooEmulator, bad: Any
) -> None:
    result = debit(
        emu, "free-user", "req-x", spec={**PNG_4, "samples": 1, "requests_in_flight": bad}
    )
    assert (result["code"], "requests_in_flight" in result["detail"]) == ("invalid_request", True)
    assert emu.ledger() == []


def test_insufficient_credits_gives_required_and_balance(emu: OdooEmulator) -> None:
    emu.add_account("poor", tier="pro", balance=7)
    result = debit(emu, "poor", "req-i")
    assert result == {"ok": False, "code": "insufficient_credits", "required": 8, "balance": 7}
    assert emu.balance("poor") == 7
    assert emu.ledger() == []


@pytest.mark.parametrize(
    ("request_id", "action", "spec"),
    [
        ("req", "regen-1", PNG_4),
        ("req", "regeneration-0", PNG_4),
        ("req", "regeneration-01", PNG_4),
        ("req", "final-1", PNG_4),
        ("req", "final-02", PNG_4),
        ("   ", "samples", PNG_4),
        ("req", "samples", {**PNG_4, "format": " "}),
        ("req", "", PNG_4),
        ("", "samples", PNG_4),
        ("req", "samples", "png"),
        ("req", "samples", {k: v for k, v in PNG_4.items() if k != "height"}),
        ("req", "samples", {**PNG_4, "width": "1024"}),
        ("req", "samples", {**PNG_4, "samples": True}),
        ("req", "samples", {**PNG_4, "advanced_model": 1}),
        ("req", "samples", {**PNG_4, "samples": 0}),
        ("req", "final", {**PNG_4, "width": 0}),
    ],
)
def test_invalid_requests_are_refused_with_a_detail(
    emu: OdooEmulator, request_id: str, action: str, spec: Any
) -> None:
    result = call(emu, "debit", "demo-user", request_id, action, spec)
    assert (result["ok"], result["code"]) == (False, "invalid_request")
    assert result["detail"]
    assert emu.balance("demo-user") == 500


def test_a_debit_for_an_unknown_account(emu: OdooEmulator) -> None:
    assert debit(emu, "ghost", "req-u") == {"ok": False, "code": "unknown_account"}


def test_refund_gives_back_exactly_the_debit_once(emu: OdooEmulator) -> None:
    debit(emu, "demo-user", "req-rf", correlation_id="corr-rf")
    debit(emu, "demo-user", "req-other")
    refunded = call(emu, "refund", "req-rf", "samples", "model crashed", "corr-rf")
    assert refunded == {
        "ok": True,
        "code": "refunded",
        "replay": False,
        "entry_id": 3,
        "user_id": "demo-user",
        "request_id": "req-rf",
        "action": "samples",
        "amount": 8,
        "balance_after": 492,
        "model": "creativeflow-standard-v1",
    }
    again = call(emu, "refund", "req-rf", "samples", "again")
    assert again == {**refunded, "replay": True}
    assert emu.balance("demo-user") == 492
    entry = emu.ledger()[-1]
    assert (entry["operation"], entry["reason"], entry["correlation_id"]) == (
        "refund",
        "model crashed",
        "corr-rf",
    )


def test_refund_refusals(emu: OdooEmulator) -> None:
    assert call(emu, "refund", "never-debited", "samples", "x") == {
        "ok": False,
        "code": "nothing_to_refund",
    }
    result = call(emu, "refund", "req", "bogus", "x")
    assert (result["code"], bool(result["detail"])) == ("invalid_request", True)
    assert call(emu, "refund", "req", "samples", False)["code"] == "invalid_request"
    debit(emu, "demo-user", "req-a", "samples")
    assert call(emu, "refund", "req-a", "final", "x")["code"] == "nothing_to_refund"


def test_a_refund_without_a_reason_records_false(emu: OdooEmulator) -> None:
    debit(emu, "demo-user", "req-nr")
    assert call(emu, "refund", "req-nr", "samples", "  ")["code"] == "refunded"
    assert emu.ledger()[-1]["reason"] is False


def test_a_refunded_action_is_never_debited_again(emu: OdooEmulator) -> None:
    first = debit(emu, "demo-user", "req-once", "final")
    call(emu, "refund", "req-once", "final", "render failed")
    again = debit(emu, "demo-user", "req-once", "final")
    assert again == {**first, "replay": True}
    assert emu.balance("demo-user") == 500
    next_attempt = debit(emu, "demo-user", "req-once", "final-2")
    assert (next_attempt["replay"], next_attempt["balance_after"]) == (False, 490)


def test_ledger_by_requests(emu: OdooEmulator) -> None:
    debit(emu, "demo-user", "req-1", correlation_id="c-1")
    debit(emu, "free-user", "req-2", spec={**PNG_4, "samples": 2})
    debit(emu, "demo-user", "req-1", "final")
    call(emu, "refund", "req-1", "samples", "failed")
    result = call(emu, "ledger_by_requests", ["req-1", "unknown"])
    assert (result["ok"], result["code"]) == (True, "ok")
    entries = result["entries"]
    assert [e["id"] for e in entries] == [1, 3, 4]
    assert [(e["action"], e["operation"]) for e in entries] == [
        ("samples", "debit"),
        ("final", "debit"),
        ("samples", "refund"),
    ]
    assert set(entries[0]) == {
        "id",
        "user_id",
        "request_id",
        "action",
        "operation",
        "amount",
        "balance_after",
        "reason",
        "correlation_id",
        "model",
        "created_at",
    }
    assert entries[0]["model"] == "creativeflow-standard-v1"
    assert (entries[0]["reason"], entries[0]["correlation_id"]) == (False, "c-1")
    datetime.strptime(entries[0]["created_at"], "%Y-%m-%d %H:%M:%S")
    assert entries == [e for e in emu.ledger() if e["request_id"] == "req-1"]


@pytest.mark.parametrize("request_ids", ["req-1", [1, 2], [f"r{i}" for i in range(501)]])
def test_ledger_by_requests_refuses_bad_lists(emu: OdooEmulator, request_ids: Any) -> None:
    assert call(emu, "ledger_by_requests", request_ids)["code"] == "invalid_request"


def test_ledger_by_requests_accepts_500_ids(emu: OdooEmulator) -> None:
    result = call(emu, "ledger_by_requests", [f"r{i}" for i in range(500)])
    assert (result["code"], result["entries"]) == ("ok", [])


def test_ledger_window_pages_through_a_half_open_range() -> None:
    clock = FakeClock(datetime(2026, 11, 21, 10, 0, 0, tzinfo=UTC))
    with OdooEmulator(clock=clock) as emu:
        for n in range(4):
            debit(emu, "demo-user", f"req-{n}", spec={**PNG_4, "samples": 1})
            clock.now += timedelta(seconds=5)
        # entries at 10:00:00, :05, :10, :15
        window = ("2026-11-21 10:00:00", "2026-11-21 10:00:15")
        page = call(emu, "ledger_window", *window, 2, 0)
        assert [e["id"] for e in page["entries"]] == [1, 2]
        assert page["has_more"] is True
        assert page["entries"][1]["created_at"] == "2026-11-21 10:00:05"
        last = call(emu, "ledger_window", *window, limit=2, offset=2)
        assert ([e["id"] for e in last["entries"]], last["has_more"]) == ([3], False)
        everything = call(emu, "ledger_window", "2026-11-21 00:00:00", "2026-11-22 00:00:00")
        assert [e["id"] for e in everything["entries"]] == [1, 2, 3, 4]


@pytest.mark.parametrize(
    "args",
    [
        ["2026-11-21T10:00:00", "2026-11-22 00:00:00"],
        ["2026-11-21 10:00:00", 5],
        ["2026-11-21 10:00:00", "2026-11-22 00:00:00", 0],
        ["2026-11-21 10:00:00", "2026-11-22 00:00:00", 10, -1],
        ["2026-11-21 10:00:00", "2026-11-22 00:00:00", 1001],
        ["2026-11-22 10:00:00", "2026-11-21 00:00:00"],
        ["2026-11-21 1:00:00", "2026-11-22 00:00:00"],
    ],
)
def test_ledger_window_refuses_bad_arguments(emu: OdooEmulator, args: list[Any]) -> None:
    assert call(emu, "ledger_window", *args)["code"] == "invalid_request"


# -- concurrency -----------------------------------------------------------------------------


def run_in_threads(count: int, work: Any) -> list[Any]:
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def worker(index: int) -> None:
        barrier.wait()
        try:
            results[index] = work(index)
        except Exception as exc:  # surfaced by the assertions below
            results[index] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_twenty_concurrent_debits_never_overdraw(emu: OdooEmulator) -> None:
    emu.add_account("contended", tier="pro", balance=50)  # room for six debits of 8
    results = run_in_threads(20, lambda i: debit(emu, "contended", f"req-{i}"))
    codes = [r["code"] for r in results]
    assert codes.count("debited") == 6
    assert codes.count("insufficient_credits") == 14
    assert emu.balance("contended") == 2
    entries = emu.ledger()
    assert len(entries) == 6
    assert sorted(e["balance_after"] for e in entries) == [2, 10, 18, 26, 34, 42]
    assert [e["id"] for e in entries] == [1, 2, 3, 4, 5, 6]


def test_twenty_concurrent_retries_of_one_debit_debit_once(emu: OdooEmulator) -> None:
    results = run_in_threads(20, lambda i: debit(emu, "demo-user", "req-same"))
    assert {r["entry_id"] for r in results} == {1}
    assert sum(1 for r in results if r["replay"] is False) == 1
    assert emu.balance("demo-user") == 492
    assert len(emu.ledger()) == 1


# -- fault knobs -----------------------------------------------------------------------------


def test_latency_still_answers(emu: OdooEmulator) -> None:
    emu.faults.latency = 0.03
    assert debit(emu, "demo-user", "req-l")["code"] == "debited"
    assert emu.faults.snapshot()["latency"] == 0.03
    with pytest.raises(ValueError):
        emu.faults.latency = -1


def test_refused_connections_are_really_refused_then_reopen_on_the_same_port(
    emu: OdooEmulator,
) -> None:
    port = emu.port
    emu.faults.refuse_connections(True)
    with pytest.raises(ConnectionRefusedError):
        login(emu)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    assert emu.request_count() == 0
    emu.faults.refuse_connections(False)
    assert emu.port == port
    assert login(emu) == 2


def test_fail_next_answers_fault_1_and_applies_nothing(emu: OdooEmulator) -> None:
    emu.faults.fail_next(1, model_method=DEBIT)
    assert call(emu, "get_entitlements", "demo-user")["ok"] is True  # not a debit: unaffected
    fault = fault_of(
        emu, DB, 2, PASSWORD, SERVICE, "debit", ["demo-user", "req-x", "samples", PNG_4]
    )
    assert fault.faultCode == 1
    assert "RuntimeError" in fault.faultString
    assert emu.balance("demo-user") == 500
    assert emu.ledger() == []
    assert debit(emu, "demo-user", "req-x")["replay"] is False


def test_fail_next_without_a_method_hits_any_call(emu: OdooEmulator) -> None:
    emu.faults.fail_next(2)
    with proxy(emu, "common") as common, pytest.raises(xmlrpc.client.Fault) as caught:
        common.login(DB, LOGIN, PASSWORD)
    assert caught.value.faultCode == 1
    _, document = jsonrpc(
        emu, "object", "execute_kw", [DB, 2, PASSWORD, SERVICE, "get_entitlements", ["demo-user"]]
    )
    assert document["error"]["data"]["name"] == "builtins.RuntimeError"
    assert login(emu) == 2


def test_a_lost_reply_is_applied_but_never_answered(emu: OdooEmulator) -> None:
    emu.faults.lose_reply_next(1)
    envelope = {
        "jsonrpc": "2.0",
        "method": "call",
        "id": 1,
        "params": {
            "service": "object",
            "method": "execute_kw",
            "args": [
                DB,
                2,
                PASSWORD,
                SERVICE,
                "debit",
                ["demo-user", "req-lost", "samples", PNG_4],
            ],
        },
    }
    connection = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=10)
    try:
        connection.request(
            "POST", "/jsonrpc", json.dumps(envelope), {"Content-Type": "application/json"}
        )
        with pytest.raises(ConnectionError):
            connection.getresponse()
    finally:
        connection.close()
    assert emu.balance("demo-user") == 492
    assert len(emu.ledger()) == 1
    retried = debit(emu, "demo-user", "req-lost")
    assert (retried["replay"], retried["entry_id"]) == (True, 1)


def test_xmlrpc_client_retries_once_after_a_lost_reply(emu: OdooEmulator) -> None:
    # xmlrpc.client's Transport silently resends after RemoteDisconnected: the second attempt
    # is answered, and it can only be a replay.
    emu.faults.lose_reply_next(1)
    result = debit(emu, "demo-user", "req-resent")
    assert (result["replay"], result["entry_id"]) == (True, 1)
    assert emu.request_count(model_method=DEBIT) == 2
    emu.faults.lose_reply_next(2)
    with pytest.raises(ConnectionError):
        debit(emu, "demo-user", "req-twice")
    assert emu.balance("demo-user") == 484
    assert len(emu.ledger()) == 2


def test_lost_replies_only_hit_the_named_method(emu: OdooEmulator) -> None:
    emu.faults.lose_reply_next(1, model_method=f"{SERVICE}.refund")
    assert debit(emu, "demo-user", "req-n")["replay"] is False
    assert emu.faults.snapshot()["lose_reply_next"] == [
        {"remaining": 1, "model_method": f"{SERVICE}.refund"}
    ]


def test_clear_restores_a_well_behaved_server(emu: OdooEmulator) -> None:
    emu.faults.latency = 0.5
    emu.faults.fail_next(3)
    emu.faults.lose_reply_next(3)
    emu.faults.refuse_connections(True)
    emu.faults.clear()
    assert emu.faults.snapshot() == {
        "latency": 0.0,
        "refusing_connections": False,
        "fail_next": [],
        "lose_reply_next": [],
    }
    assert debit(emu, "demo-user", "req-ok")["replay"] is False


# -- request counting and the control face ---------------------------------------------------


def test_request_counting(emu: OdooEmulator) -> None:
    login(emu)
    debit(emu, "demo-user", "req-1")
    debit(emu, "demo-user", "req-2")
    call(emu, "get_entitlements", "demo-user")
    jsonrpc(
        emu,
        "object",
        "execute_kw",
        [DB, 2, PASSWORD, SERVICE, "debit", ["demo-user", "req-3", "samples", PNG_4]],
    )
    control(emu, "stats")
    assert emu.request_count() == 5
    assert emu.request_count(path="/xmlrpc/2/common") == 1
    assert emu.request_count(path="/xmlrpc/2/object") == 3
    assert emu.request_count(service_method="common.login") == 1
    assert emu.request_count(service_method="object.execute_kw") == 4
    assert emu.request_count(model_method=DEBIT) == 3
    assert emu.request_count(path="/jsonrpc", model_method=DEBIT) == 1
    emu.reset_counters()
    assert emu.request_count() == 0


def test_control_face_reads_state(emu: OdooEmulator) -> None:
    debit(emu, "demo-user", "req-1")
    status, stats = control(emu, "stats")
    assert status == 200
    assert (stats["database"], stats["requests"]) == (DB, 1)
    assert stats["by_model_method"] == {DEBIT: 1}
    _, filtered = control(emu, f"stats?model_method={DEBIT}")
    assert filtered["count"] == 1
    _, ledger = control(emu, "ledger")
    assert ledger["entries"] == emu.ledger()
    _, accounts = control(emu, "accounts")
    assert {"user_id": "demo-user", "tier": "pro", "balance": 492} in accounts["accounts"]
    assert control(emu, "nothing")[0] == 404


def test_control_face_opens_accounts(emu: OdooEmulator) -> None:
    assert control(
        emu, "accounts", {"platform_user_id": "new", "tier": "studio", "balance": 30}
    ) == (201, {"user_id": "new", "tier": "studio", "balance": 30})
    assert emu.balance("new") == 30
    assert control(emu, "accounts", {"platform_user_id": "new", "tier": "pro"})[0] == 409
    assert control(emu, "accounts", {"platform_user_id": "x", "tier": "gold"})[0] == 400
    assert emu.request_count() == 0


def test_control_face_sets_faults_and_resets_counters(emu: OdooEmulator) -> None:
    status, body = control(emu, "faults", {"latency": 0.01, "fail_next": {"n": 1}})
    assert status == 200
    assert body["faults"]["fail_next"] == [{"remaining": 1, "model_method": None}]
    assert emu.faults.latency == 0.01
    with proxy(emu, "common") as common, pytest.raises(xmlrpc.client.Fault):
        common.version()
    assert control(emu, "faults", {"latency": -1, "clear": True})[0] == 400
    assert emu.faults.latency == 0.01  # a refused body changes nothing
    control(emu, "faults", {"lose_reply_next": {"n": 2}})
    assert emu.faults.snapshot()["lose_reply_next"] == [{"remaining": 2, "model_method": DEBIT}]
    control(emu, "faults", {"clear": True})
    assert emu.faults.snapshot()["lose_reply_next"] == []
    assert control(emu, "faults", {"refuse_connections": True})[0] == 400
    assert control(emu, "reset-counters", {}) == (200, {"ok": True})
    assert emu.request_count() == 0


def test_control_face_refuses_connections_for_a_while(emu: OdooEmulator) -> None:
    assert control(emu, "faults", {"refuse_connections_for": 0.3})[0] == 200
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", emu.port), timeout=5).close()
    deadline = time.monotonic() + 10
    while emu.faults.refusing and time.monotonic() < deadline:
        time.sleep(0.02)
    assert login(emu) == 2


# -- seeds, the Python face, the command line ------------------------------------------------


def test_the_default_seed(emu: OdooEmulator) -> None:
    seed = load_seed()
    assert seed.database == DB
    tiers = {tier.code: tier for tier in seed.tiers}
    assert tiers["free"].formats == ("png", "jpeg")
    assert (tiers["studio"].max_width, tiers["studio"].price_final_asset) == (8192, 8)
    assert {a.platform_user_id: a.balance for a in seed.accounts} == {
        "demo-user": 500,
        "free-user": 20,
    }
    assert emu.database == DB
    assert emu.url == f"http://127.0.0.1:{emu.port}"


def default_seed_document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(default_seed_path().read_text(encoding="utf-8"))
    return document


def test_the_default_seed_document_parses() -> None:
    assert parse_seed(default_seed_document()) == load_seed()


@pytest.mark.parametrize(
    ("section", "index", "change"),
    [
        ("accounts", 0, {"tier": "gold"}),
        ("accounts", 0, {"balance": -1}),
        ("users", 1, {"login": "orchestrator"}),
        ("users", 1, {"uid": 2}),
        ("users", 0, {"groups": ["root"]}),
        ("tiers", 0, {"max_width": 0}),
        ("tiers", 0, {"price_per_sample": -1}),
        ("tiers", 1, {"code": "free"}),
        ("tiers", 0, {"allow_advanced_models": True}),
        ("tiers", 0, {"allowed_models": ["creativeflow-unknown-v1"]}),
        ("tiers", 0, {"default_model": "creativeflow-advanced-v1"}),
        ("tiers", 0, {"allowed_models": "creativeflow-standard-v1"}),
        ("models", 0, {"code": "Standard"}),
        ("models", 1, {"code": "creativeflow-standard-v1"}),
        ("models", 0, {"active": "no"}),
    ],
)
def test_bad_seeds_are_refused(section: str, index: int, change: dict[str, Any]) -> None:
    document = default_seed_document()
    document[section][index].update(change)
    with pytest.raises(SeedError):
        parse_seed(document)


def test_an_archived_model_is_not_granted_nor_a_default() -> None:
    document = default_seed_document()
    document["models"][0]["active"] = False  # the standard model, the free tier's default
    seed = parse_seed(document)
    free = next(tier for tier in seed.tiers if tier.code == "free")
    assert (free.models, free.default_model) == (("creativeflow-draft-v1",), False)


def test_add_account_and_balance(emu: OdooEmulator) -> None:
    emu.add_account("fresh", tier="free", balance=3)
    assert emu.balance("fresh") == 3
    with pytest.raises(ValueError):
        emu.add_account("fresh", tier="free")
    with pytest.raises(ValueError):
        emu.add_account("other", tier="gold")
    with pytest.raises(KeyError):
        emu.balance("ghost")


def test_a_stopped_emulator_refuses_connections() -> None:
    with OdooEmulator() as emu:
        port = emu.port
        assert login(emu) == 2
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_a_pbkdf2_cost_still_logs_in(tmp_path: Path) -> None:
    document = default_seed_document()
    document["login_pbkdf2_rounds"] = 1000
    seed_file = tmp_path / "seed.json"
    seed_file.write_text(json.dumps(document))
    with OdooEmulator(seed=load_seed(seed_file)) as emu:
        assert login(emu) == 2
        assert login(emu, secret="wrong") is False


def test_the_command_line_serves_until_sigterm_and_logs_no_secret(api_key: str) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "creativeflow_devstack.odoo_emulator",
            "--port",
            "0",
            "--server-version",
            "19.0",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stderr is not None
        url = ""
        for line in process.stderr:
            if " on http://" in line:
                url = line.split(" on ", 1)[1].split(",", 1)[0]
                break
        assert url.startswith("http://127.0.0.1:")
        with xmlrpc.client.ServerProxy(f"{url}/xmlrpc/2/common") as common:
            assert common.login(DB, LOGIN, api_key) == 2
            assert common.version()["server_version"] == "19.0"
        process.send_signal(signal.SIGTERM)
        _, rest = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0
    assert "/xmlrpc/2/common common.login" in rest
    assert api_key not in rest


# -- generated assets kept between runs ------------------------------------------------------


def _asset(request_id: str) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "platform_user_id": "u-1",
        "storage_key": f"assets/{request_id}.png",
        "format": "png",
        "width": 64,
        "height": 64,
        "checksum_sha256": "0" * 64,
        "byte_size": 10,
        "debit_actions": ["final", "samples"],
    }


def test_recorded_assets_survive_a_snapshot_and_a_restore() -> None:
    first = CreditLedger(load_seed().tiers)
    first.add_account("u-1", "pro", 100)
    for action in ("samples", "final"):
        first.debit("u-1", "r-1", action, PNG_4)
    recorded = first.record_generated_asset(_asset("r-1"))

    second = CreditLedger(load_seed().tiers)
    second.restore(json.loads(json.dumps(first.snapshot())))

    assert second.assets() == first.assets()
    replay = second.record_generated_asset(_asset("r-1"))
    assert (replay["created"], replay["asset_id"]) == (False, recorded["asset_id"])
    changed = second.record_generated_asset({**_asset("r-1"), "byte_size": 11})
    assert (changed["code"], changed["differences"]) == ("asset_conflict", ["byte_size"])


def test_a_state_written_before_assets_were_recorded_restores_with_none() -> None:
    ledger = CreditLedger(load_seed().tiers)
    ledger.add_account("u-1", "pro", 100)
    state = ledger.snapshot()
    del state["assets"]

    ledger.restore(state)

    assert ledger.assets() == []
    assert ledger.balance("u-1") == 100


def test_a_tier_edited_in_place_binds_its_accounts_at_once(emu: OdooEmulator) -> None:
    from dataclasses import replace

    pro = emu.tier("pro")
    emu.add_account("edited", tier="pro", balance=50)
    spec = {**PNG_4, "model": "creativeflow-draft-v1"}
    assert debit(emu, "edited", "req-e1", spec=spec)["model"] == "creativeflow-draft-v1"
    emu.set_tier(replace(pro, models=("creativeflow-standard-v1",)))
    refused = debit(emu, "edited", "req-e2", spec=spec)
    assert (refused["code"], refused["reason"]) == ("tier_forbids", "model_not_allowed")
    with pytest.raises(ValueError):
        emu.set_tier(replace(pro, models=("creativeflow-draft-v1",)))
    emu.set_tier(pro)

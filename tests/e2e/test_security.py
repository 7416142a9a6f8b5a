"""Security, end to end on the real stack: secrets never leak (logs, bodies, headers, settings),
forged callbacks change nothing (state, Odoo ledger, balance), users only reach their own
requests in both identity modes, and callback asset URLs stay on the storage hosts.

What ``test_refusals.py`` already proves is not repeated here: unsigned and wrongly signed
callbacks, a replayed ``webhook-id`` of an applied event, an unknown job, and cross-user 404s in
trusted-gateway mode on GET one, selection, regeneration, cancel and list.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr, ValidationError

from creativeflow.api.app import create_app
from creativeflow.api.schemas import CallbackPayload, asset_rules, asset_url_refusal
from creativeflow.settings import Settings
from creativeflow.webhook_signature import sign, signed_headers
from tests.e2e.conftest import (
    ADMIN_TOKEN,
    CALLBACK_SECRET,
    GATEWAY_SECRET,
    Stack,
    wait_for,
)
from tests.e2e.test_generation_flow import A_REQUEST, submit

CALLBACKS = "/api/v1/callbacks/n8n"
SIMULATOR_ASSET_HOST = "assets.creativeflow.local"  # where the n8n simulator puts its assets


# --- helpers ---------------------------------------------------------------------------------


def held(stack: Stack, user: str, **changes: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """A request whose samples job the simulator takes and never answers: we answer by hand."""
    created = submit(stack, user, prompt="[hold] answered by hand", samples=1, **changes)
    job = wait_for(
        lambda: next((j for j in stack.jobs_published() if j["request_id"] == created["id"]), None)
    )
    return created, job


def samples_ready(
    job: dict[str, Any], url: str = f"https://{SIMULATOR_ASSET_HOST}/s1.png"
) -> dict[str, Any]:
    return {
        "event": "samples_ready",
        "job_id": job["job_id"],
        "request_id": job["request_id"],
        "samples": [{"id": "s1", "url": url, "width": 64, "height": 64, "format": "png"}],
    }


def platform_failure(job: dict[str, Any]) -> dict[str, Any]:
    """The event that moves money if accepted: a platform failure refunds the stage's debit."""
    return {
        "event": "failed",
        "job_id": job["job_id"],
        "request_id": job["request_id"],
        "error": {"category": "platform", "code": "provider_timeout", "message": "forged"},
    }


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


def new_msg_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def post_callback(
    stack: Stack, body: bytes, headers: dict[str, str], path: str = ""
) -> httpx.Response:
    with httpx.Client(base_url=stack.api_url, timeout=30) as client:
        return client.post(f"{CALLBACKS}{path}", content=body, headers=headers)


@dataclass(frozen=True)
class Observed:
    """What a refused callback must leave exactly as it was."""

    request: dict[str, Any]
    ledger: list[dict[str, Any]]
    balance: int


def observe(stack: Stack, user: str, request_id: str) -> Observed:
    with stack.client(user) as client:
        request = client.get(f"/api/v1/generations/{request_id}").json()
    return Observed(request, stack.ledger_for(request_id), stack.emulator.balance(user))


# --- forged callbacks ------------------------------------------------------------------------


def _forgeries(
    job: dict[str, Any], msg_id: str, now: int
) -> dict[str, tuple[bytes, dict[str, str]]]:
    """Each case: a body and headers that must be refused with 401. The body is a platform
    failure, the one event that would refund credits if it got through."""
    body = encode(platform_failure(job))
    good = signed_headers(CALLBACK_SECRET, msg_id, now, body)
    benign = encode(samples_ready(job))
    stale = now - 360  # more than five minutes old
    future = now + 360  # more than five minutes ahead
    return {
        "stale timestamp": (body, signed_headers(CALLBACK_SECRET, msg_id, stale, body)),
        "future timestamp": (body, signed_headers(CALLBACK_SECRET, msg_id, future, body)),
        "tampered body": (body, signed_headers(CALLBACK_SECRET, msg_id, now, benign)),
        "body with a byte appended": (body + b" ", good),
        "timestamp changed after signing": (
            body,
            {**good, "webhook-timestamp": str(now - 1)},
        ),
        "webhook-id changed after signing": (body, {**good, "webhook-id": new_msg_id()}),
        "unknown signature version": (
            body,
            {**good, "webhook-signature": good["webhook-signature"].replace("v1,", "v2,")},
        ),
        "signature without version": (
            body,
            {**good, "webhook-signature": good["webhook-signature"].removeprefix("v1,")},
        ),
        "truncated signature": (
            body,
            {**good, "webhook-signature": good["webhook-signature"][:-4]},
        ),
        "timestamp not a number": (body, {**good, "webhook-timestamp": f"{now}.0"}),
        "timestamp in milliseconds": (
            body,
            signed_headers(CALLBACK_SECRET, msg_id, now * 1000, body),
        ),
        "missing webhook-id": (body, {k: v for k, v in good.items() if k != "webhook-id"}),
        "missing timestamp": (
            body,
            {k: v for k, v in good.items() if k != "webhook-timestamp"},
        ),
        "secret as the signature": (
            body,
            {
                **good,
                "webhook-signature": f"v1,{base64.b64encode(CALLBACK_SECRET.encode()).decode()}",
            },
        ),
    }


def test_forged_callbacks_are_401_and_change_nothing_then_the_real_one_applies(
    stack: Stack,
) -> None:
    user = stack.new_user()
    created, job = held(stack, user)
    msg_id = new_msg_id()
    before = observe(stack, user, created["id"])
    assert before.request["status"] == "PROCESSING_SAMPLES"
    answers = {}
    for case, (body, headers) in _forgeries(job, msg_id, int(time.time())).items():
        for path in ("", "/error"):
            response = post_callback(stack, body, headers, path)
            answers[f"{case} {path or '/'}"] = response.status_code
            assert response.headers["content-type"] == "application/problem+json", case
            assert CALLBACK_SECRET not in response.text
    assert set(answers.values()) == {401}, answers
    assert observe(stack, user, created["id"]) == before
    # a refused callback does not burn its webhook-id: the genuine delivery still applies
    body = encode(platform_failure(job))
    genuine = post_callback(
        stack, body, signed_headers(CALLBACK_SECRET, msg_id, int(time.time()), body)
    )
    assert genuine.status_code == 200 and genuine.json()["outcome"] == "applied", genuine.text
    after = observe(stack, user, created["id"])
    assert after.request["status"] == "FAILED"
    assert [(e["action"], e["operation"]) for e in after.ledger] == [
        ("samples", "debit"),
        ("samples", "refund"),
    ]
    assert after.balance == before.balance + before.ledger[0]["amount"]


def test_a_replayed_failure_callback_never_refunds_twice(stack: Stack) -> None:
    user = stack.new_user()
    created, job = held(stack, user)
    body = encode(platform_failure(job))
    headers = signed_headers(CALLBACK_SECRET, new_msg_id(), int(time.time()), body)
    first = post_callback(stack, body, headers)
    assert first.status_code == 200 and first.json()["outcome"] == "applied"
    settled = observe(stack, user, created["id"])
    replay = post_callback(stack, body, headers)
    replay_on_stage_route = post_callback(stack, body, headers, "/error")
    redelivered = post_callback(
        stack, body, signed_headers(CALLBACK_SECRET, new_msg_id(), int(time.time()), body)
    )
    assert replay.status_code == 409 and replay_on_stage_route.status_code == 409
    assert redelivered.status_code == 200 and redelivered.json()["outcome"] == "duplicate"
    assert observe(stack, user, created["id"]) == settled
    assert [e["operation"] for e in settled.ledger] == ["debit", "refund"]


def test_a_job_of_another_request_is_404_and_changes_neither(stack: Stack) -> None:
    owner, other = stack.new_user(), stack.new_user()
    mine, my_job = held(stack, owner)
    theirs, _their_job = held(stack, other)
    same_user_other, _ = held(stack, owner)
    before = [
        observe(stack, owner, mine["id"]),
        observe(stack, other, theirs["id"]),
        observe(stack, owner, same_user_other["id"]),
    ]
    msg_id = new_msg_id()
    for foreign_request in (theirs["id"], same_user_other["id"]):
        for event in (platform_failure(my_job), samples_ready(my_job)):
            body = encode({**event, "request_id": foreign_request})
            response = post_callback(
                stack, body, signed_headers(CALLBACK_SECRET, msg_id, int(time.time()), body)
            )
            assert response.status_code == 404, response.text
            assert response.headers["content-type"] == "application/problem+json"
    after = [
        observe(stack, owner, mine["id"]),
        observe(stack, other, theirs["id"]),
        observe(stack, owner, same_user_other["id"]),
    ]
    assert after == before
    # the 404 was rolled back with everything else: the id is still free for the real callback
    body = encode(samples_ready(my_job))
    genuine = post_callback(
        stack, body, signed_headers(CALLBACK_SECRET, msg_id, int(time.time()), body)
    )
    assert genuine.json()["outcome"] == "applied"


def test_callback_secret_rotation_accepts_both_current_secrets_only(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert stack.container().settings is stack.settings  # the route reads these very settings
    new_secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    monkeypatch.setattr(
        stack.settings, "n8n_callback_secrets", SecretStr(f"{new_secret},{CALLBACK_SECRET}")
    )
    user = stack.new_user()
    (by_new, job_new), (by_old, job_old) = held(stack, user), held(stack, user)
    refused_request, refused_job = held(stack, user)
    now = int(time.time())

    body = encode(samples_ready(job_new))
    with_new = post_callback(stack, body, signed_headers(new_secret, new_msg_id(), now, body))
    body = encode(samples_ready(job_old))
    msg_id = new_msg_id()
    both = (
        f"{sign('a-retired-secret', msg_id, now, body)} {sign(CALLBACK_SECRET, msg_id, now, body)}"
    )
    with_old = post_callback(
        stack,
        body,
        {**signed_headers(CALLBACK_SECRET, msg_id, now, body), "webhook-signature": both},
    )
    before = observe(stack, user, refused_request["id"])
    body = encode(platform_failure(refused_job))
    with_retired = post_callback(
        stack, body, signed_headers("the-retired-secret", new_msg_id(), now, body)
    )
    # a whsec_ secret is used base64-decoded, as Standard Webhooks senders do: its text is no key
    text_keyed_id = new_msg_id()
    with_raw_text = post_callback(
        stack,
        body,
        {
            **signed_headers(new_secret, text_keyed_id, now, body),
            "webhook-signature": _hmac_with_text_key(new_secret, text_keyed_id, now, body),
        },
    )
    assert with_new.status_code == 200 and with_new.json()["outcome"] == "applied"
    assert with_old.status_code == 200 and with_old.json()["outcome"] == "applied"
    assert with_retired.status_code == 401 and with_raw_text.status_code == 401
    assert observe(stack, user, refused_request["id"]) == before
    for request in (by_new, by_old):
        with stack.client(user) as client:
            assert client.get(f"/api/v1/generations/{request['id']}").json()["status"] == (
                "AWAITING_SELECTION"
            )


def _hmac_with_text_key(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
    return f"v1,{base64.b64encode(digest).decode()}"


# --- callback asset URLs ---------------------------------------------------------------------

HOSTS = frozenset({"assets.example", "cdn.example"})

REFUSED_URLS = {
    "userinfo trick": "https://assets.example@evil.example/x.png",
    "userinfo with password": "https://assets.example:pw@evil.example/x.png",
    "userinfo on an allowed host": "https://someone@assets.example/x.png",
    "backslash trick": "https://assets.example\\@evil.example/x.png",
    "other host": "https://evil.example/x.png",
    "allowed host as a prefix": "https://assets.example.evil.example/x.png",
    "allowed host as a suffix": "https://evilassets.example/x.png",
    "allowed host in the path": "https://evil.example/assets.example/x.png",
    "allowed host in the fragment": "https://evil.example/#@assets.example",
    "trailing dot": "https://assets.example./x.png",
    "javascript": "javascript:alert(1)//assets.example",
    "data": "data:image/png;base64,AAAA",
    "ftp": "ftp://assets.example/x.png",
    "file": "file:///etc/passwd",
    "scheme-relative": "//assets.example/x.png",
    "no host": "https:///x.png",
    "blank inside": "https://assets.example/x .png",
    "newline": "https://assets.example/x.png\nhttps://evil.example",
    "leading blank": " https://assets.example/x.png",
    "bad port": "https://assets.example:99999/x.png",
    "not a port": "https://assets.example:http/x.png",
}

ACCEPTED_URLS = {
    "https": "https://assets.example/x.png",
    "http": "http://cdn.example/x.png",
    "upper-case host": "https://ASSETS.example/x.png",
    "port": "https://assets.example:8443/x.png?sig=abc#frag",
}


@pytest.mark.parametrize("url", REFUSED_URLS.values(), ids=REFUSED_URLS.keys())
def test_asset_urls_off_the_storage_hosts_are_refused(url: str) -> None:
    assert asset_url_refusal(url, HOSTS) is not None


@pytest.mark.parametrize("url", ACCEPTED_URLS.values(), ids=ACCEPTED_URLS.keys())
def test_asset_urls_on_the_storage_hosts_are_accepted(url: str) -> None:
    assert asset_url_refusal(url, HOSTS) is None


def test_without_listed_hosts_any_plain_http_url_is_accepted_but_never_userinfo() -> None:
    assert asset_url_refusal("https://anything.example/x.png", frozenset()) is None
    for case in ("userinfo trick", "javascript", "ftp", "backslash trick", "scheme-relative"):
        assert asset_url_refusal(REFUSED_URLS[case], frozenset()) is not None, case


def test_the_refusal_never_quotes_the_url() -> None:
    body = {
        "job_id": "j",
        "request_id": "r",
        "samples": [{"id": "s1", "url": "https://assets.example@evil.example/secret-token"}],
    }
    with pytest.raises(ValidationError) as refused:
        CallbackPayload.model_validate(body, context=asset_rules(HOSTS))
    errors = refused.value.errors(include_input=False)
    assert [e["loc"] for e in errors] == [("samples", 0, "url")]
    assert all("evil.example" not in str(e) and "secret-token" not in str(e) for e in errors)


def test_callbacks_with_assets_off_the_storage_hosts_are_422_and_change_nothing(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        stack.settings, "asset_url_hosts_value", f"{SIMULATOR_ASSET_HOST},cdn.example"
    )
    user = stack.new_user()
    created, job = held(stack, user)
    before = observe(stack, user, created["id"])
    msg_id = new_msg_id()
    allowed_at_evil = f"https://{SIMULATOR_ASSET_HOST}@evil.example/s1.png"
    bad_urls = [
        allowed_at_evil,
        "https://evil.example/s1.png",
        f"https://{SIMULATOR_ASSET_HOST}.evil.example/s1.png",
        f"ftp://{SIMULATOR_ASSET_HOST}/s1.png",
        "javascript:alert(document.cookie)",
    ]
    for url in bad_urls:
        for path in ("", "/samples"):
            body = encode(samples_ready(job, url))
            response = post_callback(
                stack, body, signed_headers(CALLBACK_SECRET, msg_id, int(time.time()), body), path
            )
            assert response.status_code == 422, (url, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            assert "evil.example" not in response.text
    assert observe(stack, user, created["id"]) == before
    body = encode(samples_ready(job, f"https://{SIMULATOR_ASSET_HOST}/s1.png"))
    genuine = post_callback(
        stack, body, signed_headers(CALLBACK_SECRET, msg_id, int(time.time()), body)
    )
    assert genuine.json()["outcome"] == "applied", genuine.text
    with stack.client(user) as client:
        awaiting = client.get(f"/api/v1/generations/{created['id']}").json()
    assert [s["url"] for s in awaiting["samples"]] == [f"https://{SIMULATOR_ASSET_HOST}/s1.png"]


def test_a_final_asset_off_the_storage_hosts_is_422_and_changes_nothing(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stack.settings, "asset_url_hosts_value", SIMULATOR_ASSET_HOST)
    user = stack.new_user()
    created, job = held(stack, user)
    body = encode(samples_ready(job))
    answered = post_callback(
        stack, body, signed_headers(CALLBACK_SECRET, new_msg_id(), int(time.time()), body)
    )
    assert answered.json()["outcome"] == "applied"
    with stack.client(user) as client:
        selected = client.post(
            f"/api/v1/generations/{created['id']}/selection", json={"sample_id": "s1"}
        )
    assert selected.status_code == 202, selected.text
    final_job = wait_for(
        lambda: next(
            (
                j
                for j in stack.jobs_published()
                if j["request_id"] == created["id"] and j["stage"] == "final"
            ),
            None,
        )
    )
    before = observe(stack, user, created["id"])
    assert before.request["status"] == "PROCESSING_FINAL"
    msg_id = new_msg_id()

    def final_ready(url: str) -> bytes:
        return encode(
            {
                "event": "final_ready",
                "job_id": final_job["job_id"],
                "request_id": created["id"],
                "asset": {"id": "final", "url": url},
            }
        )

    body = final_ready(f"https://{SIMULATOR_ASSET_HOST}@evil.example/final.png")
    refused = post_callback(
        stack, body, signed_headers(CALLBACK_SECRET, msg_id, int(time.time()), body), "/final"
    )
    assert refused.status_code == 422, refused.text
    assert observe(stack, user, created["id"]) == before
    body = final_ready(f"https://{SIMULATOR_ASSET_HOST}/final.png")
    genuine = post_callback(
        stack, body, signed_headers(CALLBACK_SECRET, msg_id, int(time.time()), body), "/final"
    )
    assert genuine.json()["outcome"] == "applied", genuine.text
    assert observe(stack, user, created["id"]).request["status"] == "COMPLETED"


# --- secrets ---------------------------------------------------------------------------------

LOGGERS = (
    "",
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "creativeflow",
    "odoorpc",
    "pika",
    "httpx",
)


@dataclass
class Exchanges:
    """Every response the test saw: status, headers and body."""

    seen: list[httpx.Response] = field(default_factory=list)

    def hook(self, response: httpx.Response) -> None:
        response.read()
        self.seen.append(response)

    def client(self, headers: dict[str, str] | None = None) -> httpx.Client:
        """Every request carries every credential it may (a handler echoing any header is seen),
        unless ``headers`` says otherwise."""
        every = {"X-Gateway-Secret": GATEWAY_SECRET, "X-Admin-Token": ADMIN_TOKEN}
        return httpx.Client(
            headers={**every, **(headers or {})},
            timeout=30,
            event_hooks={"response": [self.hook]},
        )

    def texts(self) -> Iterator[str]:
        for response in self.seen:
            yield f"{response.status_code} {response.request.method} {response.request.url}"
            yield "\n".join(f"{k}: {v}" for k, v in response.headers.multi_items())
            yield response.text

    def statuses(self) -> set[int]:
        return {r.status_code for r in self.seen}


def _known_secrets(settings: Settings) -> dict[str, str]:
    return {
        "gateway secret": GATEWAY_SECRET,
        "callback secret": CALLBACK_SECRET,
        "admin token": ADMIN_TOKEN,
        "odoo password": settings.odoo_secret.get_secret_value(),
    }


def _run_a_whole_flow_with_every_kind_of_answer(stack: Stack, seen: Exchanges) -> None:
    api = stack.api_url
    user = stack.new_user(balance=100)
    as_user = {"X-Gateway-Secret": GATEWAY_SECRET, "X-User-Id": user}
    with seen.client(as_user) as client:
        client.get(f"{api}/api/v1/credits")
        key = {"Idempotency-Key": f"security-{uuid.uuid4().hex}"}
        created = client.post(f"{api}/api/v1/generations", json=A_REQUEST, headers=key).json()
        client.post(f"{api}/api/v1/generations", json=A_REQUEST, headers=key)  # replayed answer
        request_url = f"{api}/api/v1/generations/{created['id']}"
        wait_for(lambda: client.get(request_url).json()["status"] == "AWAITING_SELECTION")
        client.post(f"{request_url}/selection", json={"sample_id": "s1"})
        wait_for(lambda: client.get(request_url).json()["status"] == "COMPLETED")
        client.get(f"{api}/api/v1/generations")
        client.post(f"{api}/api/v1/generations", json={**A_REQUEST, "samples": "3"})  # 422
        client.post(
            f"{api}/api/v1/generations",
            content=b'{"prompt": ',
            headers={"content-type": "application/json"},
        )  # 422
        client.get(f"{api}/api/v1/generations/{uuid.uuid4()}")  # 404
        client.post(f"{request_url}/cancel")  # 409
        client.post(
            f"{api}/api/v1/generations", json={**A_REQUEST, "style_guidance": "x" * 70_000}
        )  # 413
        stack.emulator.faults.refuse_connections(True)
        try:
            client.post(f"{api}/api/v1/generations", json=A_REQUEST)  # 503
            client.get(f"{api}/readyz")  # 503
        finally:
            stack.emulator.faults.refuse_connections(False)
        client.get(f"{api}/readyz")
        client.get(f"{api}/healthz")
        client.get(f"{api}/openapi.json")
    with seen.client({"X-Gateway-Secret": "wrong", "X-User-Id": user}) as client:
        client.get(f"{api}/api/v1/generations")  # 401
    with seen.client() as client:
        client.get(f"{api}/api/v1/credits")  # 401: the real secret, but no user
        client.get(f"{api}/api/v1/generations", headers={"X-User-Id": "u" * 200})  # 422
        client.get(f"{api}/api/v1/admin/reconciliation")
        client.get(f"{api}/api/v1/admin/reconciliation", params={"since": "2030-01-01T00:00:00Z"})
    with seen.client({"X-Admin-Token": ADMIN_TOKEN[:-1]}) as client:
        client.get(f"{api}/api/v1/admin/reconciliation")  # 401
    _callbacks_of_every_kind(stack, seen, user)


def _callbacks_of_every_kind(stack: Stack, seen: Exchanges, user: str) -> None:
    _created, job = held(stack, user)
    url = f"{stack.api_url}{CALLBACKS}"
    body = encode(samples_ready(job))
    now = int(time.time())
    headers = signed_headers(CALLBACK_SECRET, new_msg_id(), now, body)
    with seen.client() as client:
        client.post(url, content=body)  # 401 unsigned
        client.post(
            url,
            content=body,
            headers=signed_headers(CALLBACK_SECRET, new_msg_id(), now - 900, body),
        )
        invalid = b'{"job_id": 1}'
        client.post(
            url,
            content=invalid,
            headers=signed_headers(CALLBACK_SECRET, new_msg_id(), now, invalid),
        )
        client.post(url, content=body, headers=headers)  # applied
        client.post(url, content=body, headers=headers)  # 409 replay
        unknown = encode({**samples_ready(job), "job_id": str(uuid.uuid4())})
        client.post(
            url,
            content=unknown,
            headers=signed_headers(CALLBACK_SECRET, new_msg_id(), now, unknown),
        )


def _log_text(records: list[logging.LogRecord]) -> str:
    """Each record as its final message plus every other attribute (extras, exception text)."""
    lines = []
    for record in records:
        rest = {k: v for k, v in vars(record).items() if k not in ("msg", "args", "message")}
        lines.append(f"{record.getMessage()} {rest!r}")
    return "\n".join(lines)


def _without_login_mentions(text: str, login: str) -> str:
    """The e2e fixture's Odoo password is also its login, and the login is no secret: it is
    logged when the client logs in and shown in the settings. Those labelled mentions are masked
    before looking for the password; anywhere else the word still counts as a leak."""
    for labelled in (f"login {login!r}", f"odoo_login={login!r}", f'"odoo_login":"{login}"'):
        text = text.replace(labelled, "login <masked>")
    return text


def _leaks(places: dict[str, str], secrets: dict[str, str]) -> list[str]:
    found = []
    for place, text in places.items():
        for name, secret in secrets.items():
            at = text.find(secret)
            if at >= 0:
                found.append(f"{name} in {place}: ...{text[max(0, at - 120) : at + 40]!r}")
    return found


def test_no_secret_appears_in_logs_responses_settings_or_messages(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name or None)
    settings = stack.settings
    secrets = _known_secrets(settings)
    assert secrets["odoo password"] == settings.odoo_password.get_secret_value() != ""
    seen = Exchanges()
    _run_a_whole_flow_with_every_kind_of_answer(stack, seen)

    assert {200, 202, 401, 404, 409, 413, 422, 503} <= seen.statuses()
    assert len(caplog.records) > 20  # the capture really saw the flow
    logged = _log_text(caplog.records) + "\n" + caplog.text
    shown = "\n".join([repr(settings), str(settings), settings.model_dump_json()])
    if secrets["odoo password"] == settings.odoo_login:
        logged = _without_login_mentions(logged, settings.odoo_login)
        shown = _without_login_mentions(shown, settings.odoo_login)
    places = {
        "responses (status, headers, bodies)": "\n".join(seen.texts()),
        "logs": logged,
        "settings": shown,
        "job messages": json.dumps(stack.jobs_published()),
        "notifications": repr(stack.notifications.find()),
    }
    assert _leaks(places, secrets) == []


# --- users only reach their own requests -----------------------------------------------------

JWT_SECRET = "e2e-jwt-secret-0c6f3b1e9d8a4f27b5e1c0d9a8b7f6e5"
JWT_ISSUER = "https://gateway.creativeflow.test"
JWT_AUDIENCE = "creativeflow-orchestrator"


def token_for(user: str, *, secret: str = JWT_SECRET, **changes: Any) -> dict[str, str]:
    now = int(time.time())
    claims = {"sub": user, "iss": JWT_ISSUER, "aud": JWT_AUDIENCE, "iat": now, "exp": now + 300}
    claims.update(changes)
    return {"Authorization": f"Bearer {jwt.encode(claims, secret, algorithm='HS256')}"}


def _odoo_api_key(stack: Stack) -> str:
    user = next(u for u in stack.emulator.seed.users if u.login == stack.settings.odoo_login)
    return user.api_keys[0]


@pytest.fixture
def jwt_app(stack: Stack) -> Iterator[TestClient]:
    """A second orchestrator on the same database, broker and Odoo, taking users from JWTs. It
    logs in to Odoo with the technical user's API key (a value found nowhere else)."""
    values = stack.settings.model_dump()
    values.update(
        identity_mode="jwt",
        jwt_algorithms_value="HS256",
        jwt_secret=JWT_SECRET,
        jwt_issuer=JWT_ISSUER,
        jwt_audience=JWT_AUDIENCE,
        odoo_api_key=_odoo_api_key(stack),
    )
    settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
    with TestClient(create_app(settings)) as client:
        yield client


def _every_client_route(client: TestClient, request_id: str, headers: dict[str, str]) -> list[int]:
    path = f"/api/v1/generations/{request_id}"
    return [
        client.get(path, headers=headers).status_code,
        client.post(f"{path}/selection", json={"sample_id": "s1"}, headers=headers).status_code,
        client.post(f"{path}/regeneration", headers=headers).status_code,
        client.post(f"{path}/cancel", headers=headers).status_code,
    ]


def test_jwt_mode_a_user_reaches_only_their_own_requests(
    stack: Stack, jwt_app: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    owner, intruder = stack.new_user(), stack.new_user()
    submitted = jwt_app.post(
        "/api/v1/generations", json={**A_REQUEST, "samples": 1}, headers=token_for(owner)
    )
    assert submitted.status_code == 202, submitted.text
    request_id = submitted.json()["id"]
    wait_for(
        lambda: (
            jwt_app.get(f"/api/v1/generations/{request_id}", headers=token_for(owner)).json()[
                "status"
            ]
            == "AWAITING_SELECTION"
        )
    )
    before = observe(stack, owner, request_id)

    as_intruder = _every_client_route(jwt_app, request_id, token_for(intruder))
    # the owner's id in X-User-Id (with the real gateway secret) changes nothing in JWT mode
    spoofing = _every_client_route(
        jwt_app,
        request_id,
        {**token_for(intruder), "X-User-Id": owner, "X-Gateway-Secret": GATEWAY_SECRET},
    )
    gateway_only = _every_client_route(
        jwt_app, request_id, {"X-User-Id": owner, "X-Gateway-Secret": GATEWAY_SECRET}
    )
    forged = _every_client_route(
        jwt_app, request_id, token_for(owner, secret="not-the-gateway-key-but-long-enough!!")
    )
    foreign_audience = _every_client_route(jwt_app, request_id, token_for(owner, aud="another-api"))
    listed = jwt_app.get("/api/v1/generations", headers=token_for(intruder)).json()
    credits = jwt_app.get("/api/v1/credits", headers=token_for(intruder)).json()

    assert as_intruder == [404, 404, 404, 404]
    assert spoofing == [404, 404, 404, 404]
    assert gateway_only == [401, 401, 401, 401]
    assert forged == [401, 401, 401, 401]
    assert foreign_audience == [401, 401, 401, 401]
    assert listed["total"] == 0 and listed["items"] == []
    assert credits["user_id"] == intruder
    assert observe(stack, owner, request_id) == before
    assert [e["operation"] for e in stack.ledger_for(request_id)] == ["debit"]
    assert stack.ledger_of_user(intruder) == []
    # and the owner still acts on it
    cancelled = jwt_app.post(f"/api/v1/generations/{request_id}/cancel", headers=token_for(owner))
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "CANCELLED"
    logged = _log_text(caplog.records)
    assert (
        _leaks({"logs": logged}, {"jwt secret": JWT_SECRET, "odoo api key": _odoo_api_key(stack)})
        == []
    )


def test_a_users_idempotency_key_is_theirs_alone(stack: Stack) -> None:
    first, second = stack.new_user(), stack.new_user()
    key = {"Idempotency-Key": f"shared-{uuid.uuid4().hex}"}
    with stack.client(first) as client:
        mine = client.post("/api/v1/generations", json=A_REQUEST, headers=key)
    with stack.client(second) as client:
        theirs = client.post("/api/v1/generations", json=A_REQUEST, headers=key)
        listed = client.get("/api/v1/generations").json()
    assert mine.status_code == theirs.status_code == 202
    assert theirs.json()["id"] != mine.json()["id"]
    assert "idempotent-replayed" not in theirs.headers
    assert [r["id"] for r in listed["items"]] == [theirs.json()["id"]]
    assert len(stack.ledger_of_user(first)) == len(stack.ledger_of_user(second)) == 1


def test_another_users_requests_are_not_listed_under_any_filter(stack: Stack) -> None:
    owner, intruder = stack.new_user(), stack.new_user()
    held(stack, owner)
    with stack.client(intruder) as client:
        pages = [
            client.get("/api/v1/generations", params=params).json()
            for params in ({}, {"status": "PROCESSING_SAMPLES"}, {"limit": 100, "offset": 0})
        ]
    assert [p["total"] for p in pages] == [0, 0, 0]


# --- bad input never gives a 5xx ------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 20_000 + b"]" * 20_000,
        b'{"prompt": ' * 5_000 + b"1" + b"}" * 5_000,
        b"\xff\xfe\x00garbage",
        b'{"prompt": "\\ud800", "format": "png", "width": 64, "height": 64}',
        b"NaN",
    ],
    ids=["deep array", "deep object", "not utf-8", "lone surrogate", "nan"],
)
def test_hostile_json_is_a_4xx_problem_and_stores_nothing(stack: Stack, raw: bytes) -> None:
    user = stack.new_user()
    with stack.client(user) as client:
        response = client.post(
            "/api/v1/generations", content=raw, headers={"content-type": "application/json"}
        )
        listed = client.get("/api/v1/generations").json()
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert listed["total"] == 0
    assert stack.ledger_of_user(user) == []


def test_hostile_json_in_a_signed_callback_is_a_4xx(stack: Stack) -> None:
    raw = b"[" * 20_000 + b"]" * 20_000
    headers = signed_headers(CALLBACK_SECRET, new_msg_id(), int(time.time()), raw)
    response = post_callback(stack, raw, headers)
    assert 400 <= response.status_code < 500, response.text


@pytest.mark.parametrize("length", [37, 64])
def test_a_signed_callback_with_an_overlong_id_is_a_4xx(stack: Stack, length: int) -> None:
    body = encode(
        {
            "event": "failed",
            "job_id": "j" * length,
            "request_id": "r" * length,
            "error": {"category": "platform", "code": "x"},
        }
    )
    response = post_callback(
        stack, body, signed_headers(CALLBACK_SECRET, new_msg_id(), int(time.time()), body)
    )
    if not 400 <= response.status_code < 500:
        # no traceback: on Python 3.11, formatting one while the server thread logs its own
        # (a 500) can trip CPython's "AST constructor recursion depth mismatch"
        pytest.fail(f"{response.status_code}: {response.text}", pytrace=False)

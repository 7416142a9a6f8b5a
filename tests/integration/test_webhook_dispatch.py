"""The n8n webhook dispatcher against a local HTTP receiver, and the n8n simulator's webhook mode
between the dispatcher and a callback receiver. No broker is involved."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from creativeflow.adapters.webhook import (
    WebhookConfig,
    WebhookDispatchFailed,
    WebhookJobDispatcher,
    WebhookRejected,
    WebhookServerError,
    WebhookTimedOut,
    WebhookUnreachable,
)
from creativeflow.bootstrap import build_container
from creativeflow.domain.errors import DispatchUnavailable
from creativeflow.domain.jobs import JobMessage
from creativeflow.settings import Settings
from creativeflow.webhook_signature import SignatureError, signed_headers, verify
from creativeflow_devstack.n8n_simulator import (
    AnswerConfig,
    N8nWebhookSimulator,
    WebhookSimulatorConfig,
)
from tests.integration.rabbit_support import make_job
from tests.integration.test_n8n_simulator import CallbackReceiver

SECRET = "test-webhook-secret"
CALLBACK_SECRET = "test-callback-secret"
WEBHOOK_PATH = "/webhook/creativeflow-jobs"
HANG = -1  # a queued "status" that makes the receiver never answer


# -- a local n8n webhook receiver -----------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def verified(self, secrets: list[str] | None = None) -> bool:
        try:
            verify(secrets or [SECRET], self.headers, self.body, now=int(time.time()))
        except SignatureError:
            return False
        return True


class JobReceiver:
    """Records every request; answers with the queued statuses (HANG: never), then 202."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.statuses: list[int] = []
        self.headers: dict[str, str] = {}  # extra headers of every answer
        # n8n's answer to a preflight for POST: 204 while an active workflow registered the
        # webhook (with the methods it takes), 404 when none did
        self.preflight_status = 204
        self.preflight_methods: str | None = "OPTIONS, POST"
        self._release = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                status = receiver._record("POST", self.path, dict(self.headers.items()), body)
                if status == HANG:
                    receiver._release.wait()
                    self.close_connection = True
                    return
                self._answer(status)

            def do_OPTIONS(self) -> None:
                receiver._record("OPTIONS", self.path, dict(self.headers.items()), b"")
                status = receiver.preflight_status
                if 200 <= status < 300 and receiver.preflight_methods is not None:
                    self._answer(
                        status, {"access-control-allow-methods": receiver.preflight_methods}
                    )
                else:
                    self._answer(status)

            def do_GET(self) -> None:
                receiver._record("GET", self.path, dict(self.headers.items()), b"")
                self._answer(404)  # the job workflow registers no GET

            def _answer(self, status: int, extra: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for name, value in {**receiver.headers, **(extra or {})}.items():
                    self.send_header(name, value)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{WEBHOOK_PATH}"

    def _record(self, method: str, path: str, headers: dict[str, str], body: bytes) -> int:
        lowered = {name.lower(): value for name, value in headers.items()}
        with self._lock:
            self.requests.append(Received(method, path, lowered, body))
            if method in ("GET", "OPTIONS"):
                return 0
            return self.statuses.pop(0) if self.statuses else 202

    def posts(self) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.method == "POST"]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def receiver() -> Iterator[JobReceiver]:
    receiver = JobReceiver()
    receiver.start()
    yield receiver
    receiver.stop()


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}{WEBHOOK_PATH}"


def config(url: str, **overrides: Any) -> WebhookConfig:
    settings: dict[str, Any] = {
        "url": url,
        "secret": SECRET,
        "timeout": 5.0,
        "max_attempts": 3,
        "backoff_base": 0.01,
        "backoff_cap": 0.05,
    }
    return WebhookConfig(**{**settings, **overrides})


class RecordedSleeps:
    """Stands in for ``asyncio.sleep``: records each backoff instead of waiting it."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def publish(settings: WebhookConfig, job: JobMessage, sleeps: RecordedSleeps | None = None) -> None:
    async def run() -> None:
        dispatcher = WebhookJobDispatcher(settings, sleep=sleeps or RecordedSleeps())
        try:
            await dispatcher.publish(job)
        finally:
            await dispatcher.aclose()

    asyncio.run(run())


def failure_of(settings: WebhookConfig, job: JobMessage) -> WebhookDispatchFailed:
    with pytest.raises(WebhookDispatchFailed) as caught:
        publish(settings, job)
    return caught.value


def check(settings: WebhookConfig, *, close_first: bool = False) -> bool:
    async def run() -> bool:
        dispatcher = WebhookJobDispatcher(settings)
        try:
            if close_first:
                await dispatcher.aclose()
            return await dispatcher.check()
        finally:
            await dispatcher.aclose()

    return asyncio.run(run())


# -- what is sent ---------------------------------------------------------------------------------


def test_the_body_is_the_job_json_and_the_headers_verify(receiver: JobReceiver) -> None:
    job = make_job()

    publish(config(receiver.url), job)

    [sent] = receiver.posts()
    assert sent.path == WEBHOOK_PATH
    assert json.loads(sent.body) == job.to_json_dict()
    assert sent.body == job.encode()
    assert sent.headers["content-type"] == "application/json"
    assert sent.headers["webhook-id"] == job.job_id
    assert sent.headers["x-request-id"] == job.correlation_id
    assert sent.verified()
    assert not sent.verified(["another-secret"])
    assert abs(int(sent.headers["webhook-timestamp"]) - time.time()) < 60


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_any_2xx_is_a_dispatch(receiver: JobReceiver, status: int) -> None:
    receiver.statuses = [status]

    publish(config(receiver.url), make_job())

    assert len(receiver.posts()) == 1


# -- retries --------------------------------------------------------------------------------------


def test_a_503_is_retried_with_the_same_webhook_id_then_succeeds(receiver: JobReceiver) -> None:
    receiver.statuses = [503, 503]
    job = make_job()
    sleeps = RecordedSleeps()

    publish(config(receiver.url), job, sleeps)

    attempts = receiver.posts()
    assert len(attempts) == 3
    assert {a.headers["webhook-id"] for a in attempts} == {job.job_id}
    assert all(a.verified() for a in attempts)
    assert all(a.body == attempts[0].body for a in attempts)
    assert len(sleeps.delays) == 2
    assert all(0 <= delay <= 0.05 for delay in sleeps.delays)  # jittered, within the cap


def test_a_429_is_retried_after_its_retry_after_within_the_cap(receiver: JobReceiver) -> None:
    receiver.statuses = [429]
    receiver.headers = {"retry-after": "1"}
    sleeps = RecordedSleeps()

    publish(config(receiver.url, backoff_cap=2.0), make_job(), sleeps)

    assert len(receiver.posts()) == 2
    assert sleeps.delays == [1.0]


@pytest.mark.parametrize("status", [400, 401, 404, 410, 422])
def test_another_4xx_is_not_retried(receiver: JobReceiver, status: int) -> None:
    receiver.statuses = [status, 202]

    failure = failure_of(config(receiver.url), make_job())

    assert isinstance(failure, WebhookRejected)
    assert failure.http_status == status
    assert len(receiver.posts()) == 1


def test_a_failure_after_the_bounded_attempts_is_dispatch_unavailable(
    receiver: JobReceiver,
) -> None:
    receiver.statuses = [500] * 10
    job = make_job()

    failure = failure_of(config(receiver.url, max_attempts=4), job)

    assert isinstance(failure, WebhookServerError)
    assert isinstance(failure, DispatchUnavailable)
    assert failure.status_code == 503  # what the API answers; n8n's status is http_status
    assert failure.http_status == 500
    assert failure.attempts == 4
    assert failure.job_id == job.job_id
    assert failure.outcome_unknown  # a 5xx may come from a proxy after n8n took the job
    assert len(receiver.posts()) == 4


def test_no_connection_is_retried_then_unreachable() -> None:
    failure = failure_of(config(closed_port_url(), max_attempts=3), make_job())

    assert isinstance(failure, WebhookUnreachable)
    assert isinstance(failure, DispatchUnavailable)
    assert failure.attempts == 3
    assert not failure.outcome_unknown  # nothing was ever sent


def test_a_receiver_that_never_answers_times_out_and_is_not_retried(
    receiver: JobReceiver,
) -> None:
    receiver.statuses = [HANG, HANG, HANG]

    failure = failure_of(config(receiver.url, timeout=0.3), make_job())

    assert isinstance(failure, WebhookTimedOut)
    assert isinstance(failure, DispatchUnavailable)
    assert failure.outcome_unknown
    assert len(receiver.posts()) == 1


def test_a_closed_dispatcher_fails_as_a_dispatch_failure(receiver: JobReceiver) -> None:
    async def run() -> None:
        dispatcher = WebhookJobDispatcher(config(receiver.url))
        await dispatcher.aclose()
        await dispatcher.publish(make_job())

    with pytest.raises(WebhookUnreachable):
        asyncio.run(run())
    assert receiver.posts() == []


def test_the_client_detail_hides_the_cause(receiver: JobReceiver) -> None:
    receiver.statuses = [401]

    failure = failure_of(config(receiver.url), make_job())

    assert "401" not in failure.detail
    assert "401" in str(failure)


# -- readiness and configuration ------------------------------------------------------------------


def test_check_is_ready_only_when_n8n_has_the_job_webhook_registered(
    receiver: JobReceiver,
) -> None:
    assert check(config(receiver.url))
    [probe] = receiver.requests
    # a CORS preflight for POST: n8n answers it from its registered webhooks, running nothing
    assert (probe.method, probe.path) == ("OPTIONS", WEBHOOK_PATH)
    assert probe.headers["access-control-request-method"] == "POST"
    assert probe.headers["origin"] == "http://127.0.0.1"
    assert receiver.posts() == []  # the probe never starts a generation

    # n8n's answer when no active workflow registered the path: every submit would be refunded
    receiver.preflight_status = 404
    assert not check(config(receiver.url))
    receiver.preflight_status = 503
    assert not check(config(receiver.url))
    # a 2xx that does not say POST is taken (a proxy answering every preflight itself)
    receiver.preflight_status = 204
    receiver.preflight_methods = None
    assert not check(config(receiver.url))
    receiver.preflight_methods = "OPTIONS, GET"
    assert not check(config(receiver.url))


def test_check_is_not_ready_without_a_server_or_once_closed(receiver: JobReceiver) -> None:
    assert not check(config(closed_port_url()))
    assert not check(config(receiver.url), close_first=True)


def test_the_config_refuses_nonsense_and_hides_the_secret() -> None:
    shown = repr(config("https://n8n:pw-123@n8n.example/webhook/jobs"))
    assert SECRET not in shown and "pw-123" not in shown
    with pytest.raises(ValueError):
        config("ftp://n8n.example/webhook")
    for bad in ({"secret": ""}, {"timeout": 0}, {"max_attempts": 0}, {"backoff_cap": -1}):
        with pytest.raises(ValueError):
            config("http://n8n.example/webhook", **bad)


# -- the n8n simulator's webhook mode -------------------------------------------------------------


@pytest.fixture
def callbacks() -> Iterator[CallbackReceiver]:
    callbacks = CallbackReceiver()
    callbacks.start()
    yield callbacks
    callbacks.stop()


@pytest.fixture
def simulator() -> Iterator[N8nWebhookSimulator]:
    simulator = N8nWebhookSimulator(
        WebhookSimulatorConfig(
            job_secret=SECRET,
            answering=AnswerConfig(secret=CALLBACK_SECRET, delay=0.0, retry_backoff=0.05),
        )
    ).start()
    yield simulator
    simulator.stop()


def wait_until(predicate: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_the_simulator_takes_a_signed_job_and_calls_back(
    simulator: N8nWebhookSimulator, callbacks: CallbackReceiver
) -> None:
    job = make_job(callbacks.base_url)

    publish(config(simulator.url), job)

    [callback] = callbacks.wait_for(1)
    assert callback.path == "/api/v1/callbacks/n8n"
    assert callback.verified([CALLBACK_SECRET])
    assert callback.json()["event"] == "samples_ready"
    assert callback.json()["job_id"] == job.job_id
    assert simulator.jobs() == [job.to_json_dict()]
    assert wait_until(lambda: simulator.handled == 1)
    assert simulator.stats().callbacks_delivered == 1


@pytest.mark.parametrize(
    ("trigger", "event", "category"),
    [("[fail:platform]", "failed", "platform"), ("[fail:content]", "failed", "content_policy")],
)
def test_the_simulator_keeps_the_prompt_triggers(
    simulator: N8nWebhookSimulator,
    callbacks: CallbackReceiver,
    trigger: str,
    event: str,
    category: str,
) -> None:
    publish(config(simulator.url), make_job(callbacks.base_url, prompt=f"a fox {trigger}"))

    [callback] = callbacks.wait_for(1)
    assert callback.json()["event"] == event
    assert callback.json()["error"]["category"] == category


def test_the_simulator_holds_a_job_without_calling_back(
    simulator: N8nWebhookSimulator, callbacks: CallbackReceiver
) -> None:
    held, answered = (
        make_job(callbacks.base_url, prompt="slow [hold]"),
        make_job(callbacks.base_url),
    )

    publish(config(simulator.url), held)
    publish(config(simulator.url), answered)

    callbacks.wait_for(1)
    assert wait_until(lambda: simulator.handled == 2)
    assert callbacks.for_job(held) == []
    assert simulator.stats().held == 1


def test_the_simulator_drops_a_second_delivery_of_one_job(
    simulator: N8nWebhookSimulator, callbacks: CallbackReceiver
) -> None:
    job = make_job(callbacks.base_url)

    publish(config(simulator.url), job)
    publish(config(simulator.url), job)  # answered 200: n8n already has it

    assert wait_until(lambda: simulator.handled == 1)
    assert len(callbacks.for_job(job)) == 1
    assert simulator.stats().duplicates == 1


def test_the_simulator_refuses_a_wrongly_signed_job(
    simulator: N8nWebhookSimulator, callbacks: CallbackReceiver
) -> None:
    failure = failure_of(
        config(simulator.url, secret="not-the-secret"), make_job(callbacks.base_url)
    )

    assert isinstance(failure, WebhookRejected)
    assert failure.http_status == 401
    assert simulator.stats().unauthorized == 1
    assert simulator.jobs() == []


def post_signed(url: str, body: bytes, webhook_id: str) -> httpx.Response:
    headers = signed_headers(SECRET, webhook_id, int(time.time()), body)
    return httpx.post(url, content=body, headers=headers)


def test_the_simulator_refuses_a_job_that_breaks_the_schema(
    simulator: N8nWebhookSimulator, callbacks: CallbackReceiver
) -> None:
    job = make_job(callbacks.base_url)
    bad = job.to_json_dict()
    del bad["callback"]

    response = post_signed(simulator.url, json.dumps(bad).encode(), job.job_id)

    assert response.status_code == 422
    assert simulator.stats().rejected == 1
    assert simulator.jobs() == []
    assert callbacks.requests == []


def test_the_simulator_refuses_a_job_whose_webhook_id_is_not_its_job_id(
    simulator: N8nWebhookSimulator, callbacks: CallbackReceiver
) -> None:
    job = make_job(callbacks.base_url)

    response = post_signed(simulator.url, job.encode(), "msg_another_id")

    assert response.status_code == 422  # de-duplication by webhook-id needs webhook-id = job_id
    assert simulator.jobs() == []


def test_the_simulator_answers_dispatches_with_a_chosen_fault(
    simulator: N8nWebhookSimulator, callbacks: CallbackReceiver
) -> None:
    simulator.answer_dispatches_with(500)

    failure = failure_of(config(simulator.url, max_attempts=2), make_job(callbacks.base_url))

    assert isinstance(failure, WebhookServerError)
    assert simulator.stats().faulted == 2
    simulator.answer_dispatches_with(None)
    publish(config(simulator.url), make_job(callbacks.base_url))
    assert len(callbacks.wait_for(1)) == 1


def test_the_simulator_is_ready_for_the_dispatchers_probe_while_its_workflow_is_active(
    simulator: N8nWebhookSimulator, callbacks: CallbackReceiver
) -> None:
    assert check(config(simulator.url))
    assert simulator.handled == 0  # the probe started nothing
    simulator.set_active(False)
    assert not check(config(simulator.url))
    assert failure_of(config(simulator.url), make_job(callbacks.base_url)).http_status == 404
    simulator.set_active(True)
    assert check(config(simulator.url))


# -- settings and the composition root ------------------------------------------------------------


def test_webhook_mode_is_chosen_by_setting_and_never_touches_the_broker(
    receiver: JobReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISPATCH_MODE", "webhook")
    monkeypatch.setenv("N8N_WEBHOOK_URL", receiver.url)
    monkeypatch.setenv("N8N_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("N8N_WEBHOOK_MAX_ATTEMPTS", "5")
    monkeypatch.setenv("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:1/")  # nobody listens
    monkeypatch.setenv("ODOO_PASSWORD", "not-used-here")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert SECRET not in repr(settings)

    async def run() -> None:
        container = build_container(settings)
        try:
            assert isinstance(container.publisher, WebhookJobDispatcher)
            await container.publisher.publish(make_job())
        finally:
            await container.close()

    asyncio.run(run())
    [sent] = receiver.posts()
    assert sent.verified()


def test_rabbitmq_stays_the_default_dispatch() -> None:
    assert Settings(_env_file=None).dispatch_mode == "rabbitmq"  # type: ignore[call-arg]


def test_production_refuses_a_placeholder_webhook_secret_in_webhook_mode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    for name in ("GATEWAY_SHARED_SECRET", "ADMIN_TOKEN", "N8N_CALLBACK_SECRETS", "ODOO_API_KEY"):
        monkeypatch.setenv(name, f"{name.lower()}-Zx81kq0aP")
    monkeypatch.setenv("S3_ENDPOINT_URL", "https://storage.example.com")
    monkeypatch.setenv("S3_SECRET_ACCESS_KEY", "s3-secret-Zx81kq0aP")
    assert Settings(_env_file=None).environment == "production"  # type: ignore[call-arg]
    monkeypatch.setenv("DISPATCH_MODE", "webhook")
    with pytest.raises(ValidationError, match="N8N_WEBHOOK_SECRET"):
        Settings(_env_file=None)  # type: ignore[call-arg]
    monkeypatch.setenv("N8N_WEBHOOK_SECRET", "n8n-webhook-Zx81kq0aP")
    assert Settings(_env_file=None).dispatch_mode == "webhook"  # type: ignore[call-arg]

"""The n8n simulator against a real queue and a local HTTP receiver; and the notification sink."""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pika
import pytest
from pika.exceptions import AMQPConnectionError

from creativeflow.adapters.rabbitmq import PikaJobPublisher, RabbitConfig
from creativeflow.domain.jobs import JobCancellation, JobMessage, Stage
from creativeflow.webhook_signature import SignatureError, verify
from creativeflow_devstack.n8n_simulator import (
    N8nSimulator,
    OutcomeKind,
    SimulatorConfig,
    decide_outcome,
)
from creativeflow_devstack.notification_sink import running_sink
from tests.integration.rabbit_support import (
    RABBITMQ_URL,
    channel,
    delete_topology,
    get_message,
    make_job,
    queue_depth,
    unique_config,
    wait_until,
)

SECRET = "test-callback-secret"


# -- a local callback receiver --------------------------------------------------------------------


@dataclass(frozen=True)
class CallbackRequest:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def verified(self, secrets: list[str] | None = None) -> bool:
        try:
            verify(secrets or [SECRET], self.headers, self.body, now=int(time.time()))
        except SignatureError:
            return False
        return True


class CallbackReceiver:
    """Records every POST; answers with the queued status codes, then 200."""

    def __init__(self) -> None:
        self.requests: list[CallbackRequest] = []
        self.statuses: list[int] = []
        self._changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {key.lower(): value for key, value in self.headers.items()}
                status = receiver._record(CallbackRequest(self.path, headers, body))
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}/api/v1/callbacks"

    def _record(self, request: CallbackRequest) -> int:
        with self._changed:
            self.requests.append(request)
            self._changed.notify_all()
            return self.statuses.pop(0) if self.statuses else 200

    def wait_for(self, count: int, timeout: float = 15.0) -> list[CallbackRequest]:
        with self._changed:
            self._changed.wait_for(lambda: len(self.requests) >= count, timeout)
            return list(self.requests)

    def for_job(self, job: JobMessage) -> list[CallbackRequest]:
        with self._changed:
            return [r for r in self.requests if r.json()["job_id"] == job.job_id]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    receiver = CallbackReceiver()
    receiver.start()
    yield receiver
    receiver.stop()


@pytest.fixture
def config() -> Iterator[RabbitConfig]:
    config = unique_config()
    PikaJobPublisher(config).declare_topology()
    yield config
    delete_topology(config)


@pytest.fixture
def publish(config: RabbitConfig) -> Iterator[Callable[[JobMessage], None]]:
    publisher = PikaJobPublisher(config)

    def publish_job(job: JobMessage) -> None:
        asyncio.run(publisher.publish(job))

    yield publish_job
    publisher.close()


@pytest.fixture
def start_simulator(config: RabbitConfig) -> Iterator[Callable[..., N8nSimulator]]:
    started: list[N8nSimulator] = []

    def start(**overrides: Any) -> N8nSimulator:
        settings = SimulatorConfig(
            rabbitmq_url=RABBITMQ_URL,
            secret=SECRET,
            queue=config.queue,
            cancel_queue=config.cancel_queue,
            delay=0.0,
            retry_backoff=0.05,
        )
        simulator = N8nSimulator(replace(settings, **overrides))
        started.append(simulator)
        return simulator.start()

    yield start
    for simulator in started:
        simulator.stop()


# -- answers --------------------------------------------------------------------------------------


def test_a_samples_job_gets_a_signed_samples_ready_callback(
    receiver: CallbackReceiver,
    publish: Callable[[JobMessage], None],
    start_simulator: Callable[..., N8nSimulator],
    config: RabbitConfig,
) -> None:
    simulator = start_simulator()
    job = make_job(receiver.base_url, samples=3, fmt="PNG", width=1024, height=768)

    publish(job)

    [callback] = receiver.wait_for(1)
    assert callback.path == "/api/v1/callbacks/n8n"
    assert callback.headers["webhook-id"].startswith("msg_")
    assert callback.verified()
    assert not callback.verified(["another-secret"])
    body = callback.json()
    assert body["event"] == "samples_ready"
    assert (body["job_id"], body["request_id"]) == (job.job_id, job.request_id)
    assert [sample["id"] for sample in body["samples"]] == ["s1", "s2", "s3"]
    base = f"https://assets.creativeflow.local/{job.request_id}/{job.job_id}"
    assert body["samples"][1] == {
        "id": "s2",
        "url": f"{base}/sample-2.png",
        "width": 1024,
        "height": 768,
        "format": "PNG",
    }
    assert wait_until(lambda: simulator.handled == 1)
    assert queue_depth(config.queue) == 0


def test_a_final_job_gets_a_final_ready_callback(
    receiver: CallbackReceiver,
    publish: Callable[[JobMessage], None],
    start_simulator: Callable[..., N8nSimulator],
) -> None:
    start_simulator()
    job = make_job(receiver.base_url, stage=Stage.FINAL, fmt="jpeg", width=4096, height=4096)

    publish(job)

    [callback] = receiver.wait_for(1)
    assert callback.verified()
    body = callback.json()
    assert body["event"] == "final_ready"
    assert body["asset"] == {
        "id": "final",
        "url": f"https://assets.creativeflow.local/{job.request_id}/{job.job_id}/final.jpeg",
        "width": 4096,
        "height": 4096,
        "format": "jpeg",
    }


@pytest.mark.parametrize(
    ("trigger", "category", "code"),
    [
        ("[fail:platform]", "platform", "provider_unavailable"),
        ("[fail:timeout]", "platform", "provider_timeout"),
        ("[fail:content]", "content_policy", "content_policy_violation"),
    ],
)
def test_a_prompt_trigger_fails_the_job(
    trigger: str,
    category: str,
    code: str,
    receiver: CallbackReceiver,
    publish: Callable[[JobMessage], None],
    start_simulator: Callable[..., N8nSimulator],
) -> None:
    start_simulator()
    job = make_job(receiver.base_url, prompt=f"a red fox {trigger}")

    publish(job)

    [callback] = receiver.wait_for(1)
    assert callback.verified()
    body = callback.json()
    assert body["event"] == "failed"
    assert body["job_id"] == job.job_id
    assert body["error"]["category"] == category
    assert body["error"]["code"] == code
    assert body["error"]["message"]


def test_failure_shares_decide_when_no_trigger_does(
    receiver: CallbackReceiver,
    publish: Callable[[JobMessage], None],
    start_simulator: Callable[..., N8nSimulator],
) -> None:
    start_simulator(platform_failure_rate=1.0, seed=7)
    jobs = [make_job(receiver.base_url) for _ in range(3)]

    for job in jobs:
        publish(job)

    callbacks = receiver.wait_for(3)
    assert len(callbacks) == 3
    assert {c.json()["error"]["category"] for c in callbacks} == {"platform"}


def test_seeded_draws_repeat() -> None:
    def draws(seed: int) -> list[OutcomeKind]:
        rng = random.Random(seed)
        return [decide_outcome("plain prompt", rng, 0.3, 0.3).kind for _ in range(40)]

    assert draws(11) == draws(11)
    assert set(draws(11)) == {OutcomeKind.SUCCESS, OutcomeKind.FAILURE}


def test_stage_routes_are_used_when_asked(
    receiver: CallbackReceiver,
    publish: Callable[[JobMessage], None],
    start_simulator: Callable[..., N8nSimulator],
) -> None:
    start_simulator(per_stage_routes=True)
    ok = make_job(receiver.base_url)
    failing = make_job(receiver.base_url, prompt="x [fail:content]")

    publish(ok)
    publish(failing)

    receiver.wait_for(2)
    assert [r.path for r in receiver.for_job(ok)] == ["/api/v1/callbacks/samples"]
    assert [r.path for r in receiver.for_job(failing)] == ["/api/v1/callbacks/error"]


# -- invalid jobs, retries, holds, shutdown ---------------------------------------------------


def test_an_invalid_job_goes_to_the_dead_letter_queue(
    receiver: CallbackReceiver,
    config: RabbitConfig,
    start_simulator: Callable[..., N8nSimulator],
) -> None:
    simulator = start_simulator()
    schema_breaking = make_job(receiver.base_url).to_json_dict()
    del schema_breaking["callback"]
    with channel() as ch:
        ch.basic_publish(
            config.exchange,
            config.routing_key,
            json.dumps(schema_breaking).encode(),
            pika.BasicProperties(message_id="bad-schema"),
        )
        ch.basic_publish(
            config.exchange,
            config.routing_key,
            b"not json at all",
            pika.BasicProperties(message_id="bad-json"),
        )

    assert wait_until(lambda: simulator.handled == 2)

    dead = [get_message(config.dead_letter_queue), get_message(config.dead_letter_queue)]
    assert sorted(m.properties.message_id for m in dead if m is not None) == [
        "bad-json",
        "bad-schema",
    ]
    assert simulator.stats().rejected == 2
    assert receiver.requests == []


def test_a_callback_is_retried_after_a_server_error(
    receiver: CallbackReceiver,
    publish: Callable[[JobMessage], None],
    start_simulator: Callable[..., N8nSimulator],
    config: RabbitConfig,
) -> None:
    receiver.statuses = [503, 500]
    simulator = start_simulator()

    publish(make_job(receiver.base_url))

    attempts = receiver.wait_for(3)
    assert len(attempts) == 3
    assert len({a.headers["webhook-id"] for a in attempts}) == 1
    assert all(a.verified() for a in attempts)
    assert wait_until(lambda: simulator.handled == 1)
    assert simulator.stats().callbacks_delivered == 1
    assert queue_depth(config.queue) == 0


def test_a_replay_refusal_after_a_retry_counts_as_delivered(
    receiver: CallbackReceiver,
    publish: Callable[[JobMessage], None],
    start_simulator: Callable[..., N8nSimulator],
) -> None:
    receiver.statuses = [502, 409]  # the first attempt got through before its answer was lost
    simulator = start_simulator()

    publish(make_job(receiver.base_url))

    assert wait_until(lambda: simulator.handled == 1)
    assert len(receiver.requests) == 2
    assert simulator.stats().callbacks_delivered == 1
    assert simulator.stats().callbacks_failed == 0


def test_a_refused_callback_is_not_retried_and_the_job_is_acked(
    receiver: CallbackReceiver,
    publish: Callable[[JobMessage], None],
    start_simulator: Callable[..., N8nSimulator],
    config: RabbitConfig,
) -> None:
    receiver.statuses = [401]
    simulator = start_simulator()

    publish(make_job(receiver.base_url))

    assert wait_until(lambda: simulator.handled == 1)
    assert len(receiver.requests) == 1
    assert simulator.stats().callbacks_failed == 1
    assert queue_depth(config.queue) == 0


def test_a_held_job_never_gets_a_callback(
    receiver: CallbackReceiver,
    publish: Callable[[JobMessage], None],
    start_simulator: Callable[..., N8nSimulator],
    config: RabbitConfig,
) -> None:
    simulator = start_simulator()
    held, answered = make_job(receiver.base_url, prompt="slow [hold]"), make_job(receiver.base_url)

    publish(held)
    publish(answered)

    assert wait_until(lambda: simulator.handled == 2)
    assert receiver.for_job(held) == []
    assert len(receiver.for_job(answered)) == 1
    assert simulator.stats().held == 1
    assert queue_depth(config.queue) == 0


def test_a_job_cancelled_before_its_answer_gets_no_callback(
    receiver: CallbackReceiver,
    publish: Callable[[JobMessage], None],
    start_simulator: Callable[..., N8nSimulator],
    config: RabbitConfig,
) -> None:
    simulator = start_simulator()
    cancelled = make_job(receiver.base_url, prompt="slow [wait:1.5]")
    answered = make_job(receiver.base_url, prompt="slow too [wait:1.5]")
    publish(cancelled)
    publish(answered)
    assert wait_until(lambda: queue_depth(config.queue) == 0)  # both taken, answers pending

    asyncio.run(
        PikaJobPublisher(config).cancel(
            JobCancellation(
                job_id=cancelled.job_id,
                request_id=cancelled.request_id,
                stage=cancelled.stage,
                action=cancelled.action,
                correlation_id=cancelled.correlation_id,
                cancelled_at=datetime.now(UTC),
            )
        )
    )

    assert wait_until(lambda: simulator.handled == 2)
    assert receiver.for_job(cancelled) == []
    assert len(receiver.for_job(answered)) == 1
    assert (simulator.stats().cancellations, simulator.stats().cancelled) == (1, 1)
    assert queue_depth(config.cancel_queue) == 0


def test_a_duplicate_trigger_sends_the_callback_twice(
    receiver: CallbackReceiver,
    publish: Callable[[JobMessage], None],
    start_simulator: Callable[..., N8nSimulator],
) -> None:
    start_simulator()
    job = make_job(receiver.base_url, prompt="twins [duplicate]")

    publish(job)

    first, second = receiver.wait_for(2)
    assert first.body == second.body
    assert first.headers["webhook-id"] != second.headers["webhook-id"]


def test_stop_leaves_unanswered_jobs_for_redelivery(
    receiver: CallbackReceiver,
    publish: Callable[[JobMessage], None],
    start_simulator: Callable[..., N8nSimulator],
    config: RabbitConfig,
) -> None:
    simulator = start_simulator(delay=600.0)
    job = make_job(receiver.base_url)
    publish(job)
    assert wait_until(lambda: queue_depth(config.queue) == 0)  # taken, not yet acked

    simulator.stop()

    redelivered = get_message(config.queue)
    assert redelivered is not None
    assert redelivered.properties.message_id == job.job_id
    assert redelivered.method.redelivered
    assert receiver.requests == []
    assert simulator.handled == 0


def test_start_fails_fast_without_a_broker() -> None:
    simulator = N8nSimulator(
        SimulatorConfig(rabbitmq_url="amqp://guest:guest@127.0.0.1:1/", secret=SECRET)
    )
    with pytest.raises(AMQPConnectionError):
        simulator.start()


def test_simulator_config_repr_hides_secrets() -> None:
    settings = SimulatorConfig(rabbitmq_url="amqp://u:pw-123@rabbit/", secret="very-secret")
    assert "pw-123" not in repr(settings)
    assert "very-secret" not in repr(settings)


# -- the notification sink ------------------------------------------------------------------------


def test_the_notification_sink_records_and_lists() -> None:
    with running_sink() as sink:
        url = f"{sink.base_url}/api/v1/notifications"
        note = {
            "user_id": "u1",
            "type": "samples_ready",
            "request_id": "r1",
            "title": "Samples ready",
            "message": "Pick one",
            "data": {"samples": 3},
        }
        accepted = httpx.post(url, json=note)
        httpx.post(url, json={**note, "user_id": "u2", "request_id": "r2"})
        refused = httpx.post(url, json={"user_id": "u1"})

        mine = httpx.get(url, params={"user_id": "u1"}).json()
        by_request = httpx.get(url, params={"request_id": "r2"}).json()
        health = httpx.get(f"{sink.base_url}/healthz")

    assert accepted.status_code == 202
    assert refused.status_code == 422
    assert [(n["user_id"], n["title"], n["data"]) for n in mine] == [
        ("u1", "Samples ready", {"samples": 3})
    ]
    assert [n["user_id"] for n in by_request] == ["u2"]
    assert health.status_code == 200
    assert len(sink.store.find()) == 2

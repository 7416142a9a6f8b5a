"""How a message of the results queue is settled, on the use cases wired to fakes: the same
signature and de-duplication rules as the callback routes, and which failures wait for a retry
and which go to the dead letters."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from creativeflow.adapters.rabbitmq.results import SettlementKind
from creativeflow.api.callback_intake import QueuedResultIntake
from creativeflow.domain.states import Status
from creativeflow.services.callbacks import CallbackService
from creativeflow.settings import Settings
from creativeflow.webhook_signature import signed_headers
from tests.unit.test_use_cases import World

pytestmark = pytest.mark.asyncio

SECRET = "unit-callback-secret"


@pytest.fixture
def world() -> World:
    return World()


def settings() -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None, environment="test", n8n_callback_secrets=f"old-secret,{SECRET}"
    )


def samples_body(world: World, request_id: str, **changes: Any) -> bytes:
    job = world.publisher.jobs_for(request_id)[-1]
    payload = {
        "event": "samples_ready",
        "job_id": job.job_id,
        "request_id": request_id,
        "samples": [{"id": "s1", "url": "https://assets.test/1.png"}],
        **changes,
    }
    return json.dumps(payload).encode()


def signed(body: bytes, webhook_id: str = "msg_1", secret: str = SECRET) -> dict[str, str]:
    headers = signed_headers(secret, webhook_id, int(time.time()), body)
    headers.pop("content-type")
    return headers


async def test_an_applied_result_is_acked_and_its_replay_changes_nothing(world: World) -> None:
    intake = QueuedResultIntake(settings(), world.callbacks)
    request_id = await world.submit()
    body = samples_body(world, request_id)
    first = await intake(signed(body), body)
    again = await intake(signed(body), body)
    assert (first.kind, first.reason) == (SettlementKind.ACK, "applied")
    assert (again.kind, again.reason) == (SettlementKind.ACK, "replayed")
    assert world.db.request(request_id).status is Status.AWAITING_SELECTION
    assert world.notifier.types(request_id) == ["generation.samples_ready"]


@pytest.mark.parametrize(
    ("forge", "why"),
    [
        (lambda h, b: (signed(b, secret="not-ours"), b), "signature refused"),
        (lambda h, b: (h, b.replace(b"1.png", b"2.png")), "signature refused"),
        (lambda h, b: ({k: v for k, v in h.items() if k != "webhook-signature"}, b), "missing"),
        (lambda h, b: (signed(b"{not json"), b"{not json"), "Invalid JSON"),
    ],
    ids=["other-secret", "tampered-body", "unsigned", "not-json"],
)
async def test_a_refused_result_is_dead_lettered_and_changes_nothing(
    world: World, forge: Any, why: str
) -> None:
    intake = QueuedResultIntake(settings(), world.callbacks)
    request_id = await world.submit()
    body = samples_body(world, request_id)
    headers, sent = forge(signed(body), body)
    settled = await intake(headers, sent)
    assert settled.kind is SettlementKind.DEAD_LETTER
    assert why in settled.reason
    assert SECRET not in settled.reason
    assert world.db.request(request_id).status is Status.PROCESSING_SAMPLES


async def test_a_result_for_no_such_job_or_the_wrong_stage_is_dead_lettered(world: World) -> None:
    intake = QueuedResultIntake(settings(), world.callbacks)
    request_id = await world.submit()
    unknown = samples_body(world, request_id, job_id="00000000-0000-4000-8000-000000000000")
    wrong_stage = samples_body(
        world,
        request_id,
        event="final_ready",
        samples=[],
        asset={"id": "final", "url": "https://assets.test/f.png"},
    )
    for body, webhook_id in ((unknown, "msg_unknown"), (wrong_stage, "msg_stage")):
        settled = await intake(signed(body, webhook_id), body)
        assert settled.kind is SettlementKind.DEAD_LETTER, settled
    assert world.db.request(request_id).status is Status.PROCESSING_SAMPLES


class DatabaseDown:
    """The tracking store while PostgreSQL refuses connections."""

    async def run(self, work: object) -> object:
        raise ConnectionError('connection to server at "127.0.0.1" failed\n[SQL: INSERT ...]')


async def test_a_database_outage_asks_for_a_retry_and_the_retry_applies(world: World) -> None:
    request_id = await world.submit()
    body = samples_body(world, request_id)
    down = CallbackService(DatabaseDown(), world.refunder, world.notifier, world.clock)  # type: ignore[arg-type]
    settled = await QueuedResultIntake(settings(), down)(signed(body), body)
    assert settled.kind is SettlementKind.RETRY
    assert settled.reason == 'ConnectionError: connection to server at "127.0.0.1" failed'
    assert world.db.request(request_id).status is Status.PROCESSING_SAMPLES
    back = await QueuedResultIntake(settings(), world.callbacks)(signed(body), body)
    assert back.kind is SettlementKind.ACK
    assert world.db.request(request_id).status is Status.AWAITING_SELECTION


async def test_a_result_needs_its_event_named(world: World) -> None:
    intake = QueuedResultIntake(settings(), world.callbacks)
    request_id = await world.submit()
    body = samples_body(world, request_id, event=None)
    settled = await intake(signed(body), body)
    assert settled.kind is SettlementKind.DEAD_LETTER
    assert "names no event" in settled.reason


async def test_a_webhook_id_with_control_characters_never_forges_a_log_line(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    intake = QueuedResultIntake(settings(), world.callbacks)
    request_id = await world.submit()
    body = samples_body(world, request_id)
    headers = signed(body, secret="not-ours")
    headers["webhook-id"] = "msg_x\nINFO forged line"
    with caplog.at_level("WARNING"):
        settled = await intake(headers, body)
    assert settled.kind is SettlementKind.DEAD_LETTER
    [record] = [r for r in caplog.records if "refused" in r.getMessage()]
    assert "\n" not in record.getMessage()
    assert "msg_xINFO forged line" in record.getMessage()

"""Posting a request's events to its client's webhook, on fakes of the ports: every event in
order, each once accepted, a failed post retried later from where it stopped, giving up after
the attempts allowed; and the submit that asks for it."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest

from creativeflow.adapters.client_webhooks import (
    ClientWebhookSenderConfig,
    HttpClientWebhookSender,
)
from creativeflow.api.schemas import webhook_url_refusal
from creativeflow.domain.client_webhooks import (
    ClientWebhookStatus,
    ClientWebhookUndelivered,
    DeliveryRules,
    message_id,
)
from creativeflow.services.client_webhooks import ClientWebhookConfig, ClientWebhookDelivery
from tests.unit.test_use_cases import A_SUBMIT, USER, World

pytestmark = pytest.mark.asyncio

HOOK = "https://client.example/hooks/creativeflow"


class Receiver:
    """The client's end: what it accepted, and how many posts it refuses next."""

    def __init__(self) -> None:
        self.accepted: list[tuple[str, str, dict[str, object]]] = []
        self.refuse_next = 0
        self.posts = 0

    async def send(self, url: str, message_id: str, body: bytes) -> None:
        self.posts += 1
        if self.refuse_next:
            self.refuse_next -= 1
            raise ClientWebhookUndelivered("answered HTTP 503")
        self.accepted.append((url, message_id, json.loads(body)))

    async def aclose(self) -> None:
        return None


def delivery(world: World, receiver: Receiver, **rules: object) -> ClientWebhookDelivery:
    config = ClientWebhookConfig(rules=DeliveryRules(**rules), batch=3)  # type: ignore[arg-type]
    return ClientWebhookDelivery(world.db, receiver, world.clock, config)


async def submit_with_hook(world: World) -> str:
    command = replace(A_SUBMIT, webhook_url=HOOK)
    return (await world.generations.submit(USER, command, "c-1")).id


def event_ids(world: World, request_id: str) -> list[int]:
    return [e.id or 0 for e in world.db.events(request_id)]


async def test_every_event_is_posted_in_order_with_a_stable_webhook_id() -> None:
    world, receiver = World(), Receiver()
    request_id = await submit_with_hook(world)
    hooks = delivery(world, receiver)
    while await hooks.deliver_due():  # batches of three
        pass
    await world.samples_arrive(request_id)
    while await hooks.deliver_due():
        pass
    ids = event_ids(world, request_id)
    assert [m for _, m, _ in receiver.accepted] == [message_id(i) for i in ids]
    assert {url for url, _, _ in receiver.accepted} == {HOOK}
    bodies = [body for _, _, body in receiver.accepted]
    assert [b["id"] for b in bodies] == ids
    assert bodies[-1]["type"] == "samples_ready"
    assert all(b["request_id"] == request_id for b in bodies)
    assert await hooks.deliver_due() == 0  # nothing new: nothing posted
    assert receiver.posts == len(ids)


async def test_a_refused_post_is_tried_again_later_from_where_it_stopped() -> None:
    world, receiver = World(), Receiver()
    request_id = await submit_with_hook(world)
    hooks = delivery(world, receiver)
    receiver.refuse_next = 1
    assert await hooks.deliver_due() == 0
    hook = world.db.webhook(request_id)
    assert hook is not None and hook.attempts == 1 and hook.last_error == "answered HTTP 503"
    assert await hooks.deliver_due() == 0, "not before its retry time"
    world.clock.advance(timedelta(seconds=5))
    while await hooks.deliver_due():
        pass
    assert [m for _, m, _ in receiver.accepted] == [
        message_id(i) for i in event_ids(world, request_id)
    ]
    hook = world.db.webhook(request_id)
    assert hook is not None and (hook.attempts, hook.last_error) == (0, None)


async def test_delivery_gives_up_after_the_attempts_allowed() -> None:
    world, receiver = World(), Receiver()
    request_id = await submit_with_hook(world)
    hooks = delivery(world, receiver, max_attempts=3)
    receiver.refuse_next = 100
    for _ in range(5):
        await hooks.deliver_due()
        world.clock.advance(timedelta(minutes=11))
    hook = world.db.webhook(request_id)
    assert hook is not None and hook.status is ClientWebhookStatus.FAILED
    assert receiver.posts == 3 and receiver.accepted == []


async def test_the_retry_delay_doubles_up_to_its_cap() -> None:
    rules = DeliveryRules(max_attempts=20)
    now = World().clock.now()
    delays = [rules.after_failure(n, now)[1] - now for n in (1, 2, 3, 10)]
    assert delays == [
        timedelta(seconds=5),
        timedelta(seconds=10),
        timedelta(seconds=20),
        timedelta(minutes=10),
    ]
    assert rules.after_failure(20, now)[0] is ClientWebhookStatus.FAILED


async def test_a_request_without_a_webhook_posts_nothing() -> None:
    world, receiver = World(), Receiver()
    request_id = await world.submit()
    assert world.db.webhook(request_id) is None
    assert await delivery(world, receiver).deliver_due() == 0
    assert receiver.posts == 0


async def test_a_kick_delivers_the_requests_new_events() -> None:
    world, receiver = World(), Receiver()
    request_id = await submit_with_hook(world)
    hooks = delivery(world, receiver)
    hooks.kick(request_id)
    hooks.kick(request_id)  # a second wake-up while the first runs: one more round, no double
    await hooks.aclose()  # waits for the rounds: more than a batch (3) was due
    ids = [m for _, m, _ in receiver.accepted]
    assert ids == [message_id(i) for i in event_ids(world, request_id)]
    assert await hooks.deliver_due() == 0
    hooks.kick(request_id)  # closed: nothing starts
    assert receiver.posts == len(ids)


@pytest.mark.parametrize(
    ("url", "refusal"),
    [
        ("https://client.example/hooks", None),
        ("http://client.example/hooks", "the webhook URL must be an https URL"),
        ("https://127.0.0.1/hooks", "the webhook URL must not point at a loopback"),
        ("https://10.1.2.3/hooks", "the webhook URL must not point at a loopback"),
        ("https://[::1]/hooks", "the webhook URL must not point at a loopback"),
        ("https://localhost/hooks", "the webhook URL must not point at a local host name"),
        ("https://db.internal/hooks", "the webhook URL must not point at a local host name"),
    ],
)
async def test_a_webhook_is_https_on_a_public_host(url: str, refusal: str | None) -> None:
    found = webhook_url_refusal(url, allow_private_hosts=False)
    assert (found or "").startswith(refusal or "")
    assert (found is None) is (refusal is None)
    assert webhook_url_refusal(url, allow_private_hosts=True) is None


async def test_the_sender_refuses_a_host_that_resolves_to_a_private_address() -> None:
    sender = HttpClientWebhookSender(ClientWebhookSenderConfig(secret="s", timeout=1))
    try:
        with pytest.raises(ClientWebhookUndelivered, match="non-public address"):
            await sender.send("https://localhost:9/hooks", "evt_1", b"{}")
    finally:
        await sender.aclose()

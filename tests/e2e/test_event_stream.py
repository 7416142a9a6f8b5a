"""The live status stream (``GET /api/v1/generations/{id}/events``, Server-Sent Events), end to
end: the API served by uvicorn, real PostgreSQL and RabbitMQ, the Odoo emulator and the n8n
simulator. What a client reads is compared with what the tracking table holds: every event, in
order, none twice, across a disconnect, across replicas and across a lost LISTEN connection."""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg2
import pytest
from httpx_sse import connect_sse
from sqlalchemy.engine import make_url

from creativeflow.api.app import create_app
from creativeflow.settings import Settings
from creativeflow_devstack.stack import serve_in_thread
from tests.e2e.conftest import GATEWAY_SECRET, Stack, free_port, wait_for, wait_for_status

A_REQUEST = {"prompt": "a lighthouse at dawn", "format": "png", "width": 1024, "height": 1024}
TERMINAL = {"COMPLETED", "FAILED", "CONTENT_REJECTED", "CANCELLED", "REFUSED"}
# a stream that sends nothing for this long is a failure, not a hang (the stack's streams send a
# keep-alive every 15 s; the second replica's every second)
READ_TIMEOUT = 10.0


@dataclass(frozen=True)
class Seen:
    """One event as a client read it: the cursor, the type, and the JSON data."""

    id: int
    type: str
    data: dict[str, Any]


@dataclass
class Replica:
    """A second API process on the same database and broker: another replica."""

    url: str
    settings: Settings
    app: Any

    def client(self, user_id: str) -> httpx.Client:
        return _client(self.url, user_id)


def _client(base_url: str, user_id: str) -> httpx.Client:
    return httpx.Client(
        base_url=base_url,
        headers={"X-Gateway-Secret": GATEWAY_SECRET, "X-User-Id": user_id},
        timeout=httpx.Timeout(30.0, read=READ_TIMEOUT),
    )


@pytest.fixture(scope="module")
def replica(stack: Stack) -> Iterator[Replica]:
    port = free_port()
    settings = stack.settings.model_copy(
        update={
            "event_stream_keepalive_seconds": 1.0,
            "event_streams_max_per_user": 2,
            "event_streams_max": 3,
            "event_stream_retry_ms": 1500,
        }
    )
    app = create_app(settings)
    with serve_in_thread(app, "127.0.0.1", port, "api-replica"):
        yield Replica(f"http://127.0.0.1:{port}", settings, app)


def submit(client: httpx.Client, **changes: object) -> str:
    answer = client.post("/api/v1/generations", json={**A_REQUEST, "samples": 2, **changes})
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


def read(
    client: httpx.Client,
    request_id: str,
    *,
    count: int | None = None,
    until: str | None = None,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> tuple[list[Seen], bool]:
    """Events of one connection: ``count`` of them, or up to the first of type ``until``, or
    all until the server ends the stream. Returns them and whether the server ended it."""
    seen: list[Seen] = []
    url = f"/api/v1/generations/{request_id}/events"
    with connect_sse(client, "GET", url, headers=headers or {}, params=params) as source:
        assert source.response.status_code == 200, source.response.read()
        for sse in source.iter_sse():
            if sse.event == "message" and not sse.data:
                continue  # the retry hint
            seen.append(Seen(int(sse.id), sse.event, json.loads(sse.data)))
            if (count is not None and len(seen) == count) or sse.event == until:
                return seen, False
    return seen, True


def stored(stack: Stack, request_id: str) -> list[tuple[int, str]]:
    """Every event of the request in the tracking table, in id order."""
    events = stack.container().db.run_sync(lambda repo: repo.events_after(request_id, 0, 1000))
    return [(e.id, e.type.value) for e in events]


def as_pairs(seen: list[Seen]) -> list[tuple[int, str]]:
    return [(s.id, s.type) for s in seen]


def statuses(seen: list[Seen]) -> list[str]:
    return [s.data["data"]["status"] for s in seen if s.type == "status_changed"]


# --- the flow, live --------------------------------------------------------------------------


def test_a_stream_follows_a_request_to_its_end_and_closes(stack: Stack) -> None:
    user = stack.new_user(balance=100)
    with _client(stack.api_url, user) as client:
        request_id = submit(client)
        before_selection, ended = read(client, request_id, until="samples_ready")
        assert not ended
        samples = before_selection[-1].data["data"]["samples"]
        assert len(samples) == 2 and all(s["url"].startswith("https://") for s in samples)
        chosen = samples[0]["id"]
        selected = client.post(
            f"/api/v1/generations/{request_id}/selection", json={"sample_id": chosen}
        )
        assert selected.status_code == 202, selected.text
        rest, ended = read(
            client, request_id, headers={"Last-Event-ID": str(before_selection[-1].id)}
        )
    assert ended, "the stream of a completed request ends by itself"
    seen = before_selection + rest
    assert as_pairs(seen) == stored(stack, request_id)
    assert statuses(seen) == [
        "PENDING",
        "VALIDATING_CREDITS",
        "PUBLISHING_TO_QUEUE",
        "PROCESSING_SAMPLES",
        "AWAITING_SELECTION",
        "PROCESSING_FINAL",
        "COMPLETED",
    ]
    charged = [
        (s.data["data"]["action"], s.data["data"]["amount"])
        for s in seen
        if s.type == "credits_charged"
    ]
    assert charged == [("samples", 4), ("final", 10)]
    final = next(s for s in seen if s.type == "final_ready")
    assert final.data["data"]["selected_sample_id"] == chosen
    assert final.data["data"]["asset"]["url"].startswith("https://")
    assert all(s.data["request_id"] == request_id and s.data["id"] == s.id for s in seen)


def test_a_platform_failure_streams_the_failure_and_the_refund_then_ends(stack: Stack) -> None:
    user = stack.new_user(balance=100)
    with _client(stack.api_url, user) as client:
        request_id = submit(client, prompt="a lighthouse [fail:platform]")
        seen, ended = read(client, request_id)
    assert ended
    assert as_pairs(seen) == stored(stack, request_id)
    failed = next(s for s in seen if s.type == "failed")
    assert (failed.data["data"]["status"], failed.data["data"]["category"]) == (
        "FAILED",
        "platform",
    )
    assert failed.data["data"]["code"] == "provider_unavailable"
    refunds = [s.data["data"] for s in seen if s.type == "credits_refunded"]
    assert refunds == [{"action": "samples", "amount": 4}]
    assert seen[-1].type in {"credits_refunded", "failed", "status_changed"}
    assert stack.emulator.balance(user) == 100


def test_a_client_that_disconnects_resumes_with_last_event_id_and_misses_nothing(
    stack: Stack,
) -> None:
    user = stack.new_user(balance=100)
    with _client(stack.api_url, user) as client:
        request_id = submit(client)
        first, _ = read(client, request_id, count=2)  # then the client goes away
        # meanwhile the request moves on: samples, selection, the final asset
        awaiting = wait_for_status(client, request_id, "AWAITING_SELECTION")
        client.post(
            f"/api/v1/generations/{request_id}/selection",
            json={"sample_id": awaiting["samples"][1]["id"]},
        )
        wait_for_status(client, request_id, "COMPLETED")
        rest, ended = read(client, request_id, headers={"Last-Event-ID": str(first[-1].id)})
        # a client that cannot set headers resumes with the query parameter
        by_query, _ = read(client, request_id, params={"last_event_id": str(first[0].id)})
    assert ended
    assert as_pairs(first + rest) == stored(stack, request_id)
    assert len({s.id for s in first + rest}) == len(first + rest)
    assert as_pairs(by_query) == stored(stack, request_id)[1:]


def test_a_finished_request_answers_what_follows_the_cursor_then_204(stack: Stack) -> None:
    user = stack.new_user(balance=100)
    with _client(stack.api_url, user) as client:
        request_id = submit(client, prompt="a lighthouse [fail:content]")
        wait_for_status(client, request_id, "CONTENT_REJECTED")
        everything = stored(stack, request_id)
        tail, ended = read(client, request_id, headers={"Last-Event-ID": str(everything[-3][0])})
        nothing = client.get(
            f"/api/v1/generations/{request_id}/events",
            headers={"Last-Event-ID": str(everything[-1][0])},
        )
    assert ended and as_pairs(tail) == everything[-2:]
    assert nothing.status_code == 204 and nothing.content == b""


# --- replicas and the listener ---------------------------------------------------------------


def test_a_change_made_through_one_replica_is_streamed_by_another(
    stack: Stack, replica: Replica
) -> None:
    user = stack.new_user(balance=100)
    with _client(stack.api_url, user) as first, replica.client(user) as second:
        request_id = submit(first)
        until_samples, _ = read(second, request_id, until="samples_ready")
        seen: list[Seen] = []

        def follow() -> None:
            more, _ = read(second, request_id, headers={"Last-Event-ID": str(until_samples[-1].id)})
            seen.extend(more)

        follower = threading.Thread(target=follow)
        follower.start()
        wait_for(lambda: replica.app.state.container.live_events.open_streams == 1)
        selected = first.post(
            f"/api/v1/generations/{request_id}/selection",
            json={"sample_id": until_samples[-1].data["data"]["samples"][0]["id"]},
        )
        assert selected.status_code == 202
        follower.join(30)
    assert not follower.is_alive()
    assert as_pairs(until_samples + seen) == stored(stack, request_id)
    assert statuses(seen)[-1] == "COMPLETED"


def test_a_lost_listen_connection_reconnects_and_no_event_is_lost(
    stack: Stack, replica: Replica
) -> None:
    listener = replica.app.state.container.events_listener
    wait_for(lambda: listener.connected)
    reconnects = listener.reconnects
    user = stack.new_user(balance=100)
    with _client(stack.api_url, user) as first, replica.client(user) as second:
        request_id = submit(first)
        until_samples, _ = read(second, request_id, until="samples_ready")
        _terminate_listeners(replica.settings.database_url)
        first.post(
            f"/api/v1/generations/{request_id}/selection",
            json={"sample_id": until_samples[-1].data["data"]["samples"][0]["id"]},
        )
        rest, ended = read(second, request_id, headers={"Last-Event-ID": str(until_samples[-1].id)})
    wait_for(lambda: listener.connected and listener.reconnects > reconnects)
    assert ended
    assert as_pairs(until_samples + rest) == stored(stack, request_id)


def _terminate_listeners(database_url: str) -> None:
    """Cut the LISTEN connections on the test database, as a database restart would."""
    url = make_url(database_url)
    admin = psycopg2.connect(url.set(drivername="postgresql").render_as_string(hide_password=False))
    try:
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND application_name = 'creativeflow-events-listener'",
                (url.database,),
            )
            assert cursor.fetchall(), "no listener was connected"
    finally:
        admin.close()


# --- who may watch, and bad cursors ------------------------------------------------------------


def test_another_users_request_is_404_and_bad_cursors_are_422(stack: Stack) -> None:
    owner, stranger = stack.new_user(), stack.new_user()
    with _client(stack.api_url, owner) as client, _client(stack.api_url, stranger) as other:
        request_id = submit(client)
        other_id = submit(other)
        wait_for_status(client, request_id, "AWAITING_SELECTION")
        url = f"/api/v1/generations/{request_id}/events"
        theirs = other.get(url)
        unknown = client.get(f"/api/v1/generations/{uuid.uuid4()}/events")
        bad = [
            client.get(url, headers={"Last-Event-ID": value})
            for value in ("abc", "-1", "1.5", "1" * 19, "7x")
        ]
        bad_query = client.get(url, params={"last_event_id": "x1"})
        another_requests_event = stored(stack, other_id)[0][0]
        foreign = client.get(url, headers={"Last-Event-ID": str(another_requests_event)})
        unknown_param = client.get(url, params={"since": "1"})
    for answer in (theirs, unknown):
        assert answer.status_code == 404
        assert answer.headers["content-type"] == "application/problem+json"
    for answer in (*bad, bad_query, foreign, unknown_param):
        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
    assert bad[0].json()["errors"][0]["loc"] == ["header", "Last-Event-ID"]
    assert "1 to 18 digits" in bad[0].json()["errors"][0]["msg"]
    assert bad_query.json()["errors"][0]["loc"] == ["query", "last_event_id"]
    assert foreign.json()["type"] == "/problems/invalid-event-cursor"
    assert "Last-Event-ID" in foreign.json()["detail"]


def test_unauthenticated_streams_are_refused(stack: Stack) -> None:
    with httpx.Client(base_url=stack.api_url) as anonymous:
        answer = anonymous.get(f"/api/v1/generations/{uuid.uuid4()}/events")
    assert answer.status_code == 401


# --- limits, keep-alive, metrics and stopping --------------------------------------------------


def test_streams_past_the_limits_are_refused_with_retry_after(
    stack: Stack, replica: Replica
) -> None:
    live = replica.app.state.container.live_events
    wait_for(lambda: live.open_streams == 0)
    before = httpx.get(f"{replica.url}/metrics").text
    users = [stack.new_user() for _ in range(3)]
    requests = {}
    for user in users:
        with _client(stack.api_url, user) as client:
            requests[user] = submit(client)
            wait_for_status(client, requests[user], "AWAITING_SELECTION")
    with (
        replica.client(users[0]) as a,
        replica.client(users[1]) as b,
        replica.client(users[2]) as c,
        HeldStream(a, requests[users[0]]),
        HeldStream(a, requests[users[0]]),
    ):
        wait_for(lambda: live.open_streams == 2)
        per_user = a.get(f"/api/v1/generations/{requests[users[0]]}/events")
        with HeldStream(b, requests[users[1]]):
            wait_for(lambda: live.open_streams == 3)
            per_process = c.get(f"/api/v1/generations/{requests[users[2]]}/events")
            scraped = httpx.get(f"{replica.url}/metrics").text
    wait_for(lambda: live.open_streams == 0)
    assert per_user.status_code == 429
    assert per_user.json()["type"] == "/problems/too-many-event-streams"
    assert per_user.headers["Retry-After"] == "10"
    assert per_process.status_code == 503
    assert per_process.json()["type"] == "/problems/event-streams-busy"
    assert per_process.headers["Retry-After"] == "10"
    assert "creativeflow_event_streams_open 3.0" in scraped
    # each open stream's answer is already timed: from its start, not its whole life
    assert streams_timed(scraped) - streams_timed(before) == 3
    assert "creativeflow_events_listener_up 1.0" in scraped
    after = httpx.get(f"{replica.url}/metrics").text
    assert "creativeflow_event_streams_open 0.0" in after


def streams_timed(scraped: str) -> float:
    """How many answers of the events route with status 200 /metrics has timed."""
    timed = re.search(
        r'^creativeflow_http_request_duration_seconds_count\{method="GET",'
        r'route="/api/v1/generations/\{request_id\}/events",status="200"\} (\S+)$',
        scraped,
        re.MULTILINE,
    )
    return float(timed.group(1)) if timed else 0.0


class HeldStream:
    """A stream held open by a client that reads it in a thread until the block ends."""

    def __init__(self, client: httpx.Client, request_id: str) -> None:
        self._client, self._request_id = client, request_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._hold)
        self.lines: list[str] = []

    def _hold(self) -> None:
        url = f"/api/v1/generations/{self._request_id}/events"
        with self._client.stream("GET", url) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                self.lines.append(line)
                if self._stop.is_set():
                    return

    def __enter__(self) -> HeldStream:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(30)


def test_a_quiet_stream_sends_keep_alives_and_the_retry_hint(
    stack: Stack, replica: Replica
) -> None:
    user = stack.new_user()
    with _client(stack.api_url, user) as client:
        request_id = submit(client)
        wait_for_status(client, request_id, "AWAITING_SELECTION")
    with replica.client(user) as client, HeldStream(client, request_id) as held:
        wait_for(lambda: ": keep-alive" in held.lines)
    assert held.lines[0] == "retry: 1500"
    events = [line for line in held.lines if line.startswith("event: ")]
    assert events[-1] == "event: samples_ready"  # everything so far, then keep-alives


def test_stopping_the_server_ends_its_open_streams(stack: Stack) -> None:
    user = stack.new_user()
    with _client(stack.api_url, user) as client:
        request_id = submit(client)
        wait_for_status(client, request_id, "AWAITING_SELECTION")
    port = free_port()
    app = create_app(stack.settings)
    seen: list[Seen] = []
    outcome: list[bool] = []

    def follow() -> None:
        with _client(f"http://127.0.0.1:{port}", user) as watcher:
            events, ended = read(watcher, request_id)
        seen.extend(events)
        outcome.append(ended)

    with serve_in_thread(app, "127.0.0.1", port, "api-stopping"):
        follower = threading.Thread(target=follow)
        follower.start()
        wait_for(lambda: app.state.container.live_events.open_streams == 1)
    follower.join(30)
    assert outcome == [True], "the stream ended when the server stopped"
    assert as_pairs(seen) == stored(stack, request_id)
    assert not app.state.container.events_listener.connected

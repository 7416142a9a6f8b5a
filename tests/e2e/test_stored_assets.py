"""Stored assets through the whole product: the API on uvicorn, PostgreSQL, RabbitMQ, the n8n
simulator, the Odoo emulator, and two S3 servers over real HTTP (moto's: one is the provider's
output store the simulator publishes its images to, behind signed URLs; the other is our
storage, stopped and started again to make an outage).

What a user and an operator notice: the view's links are ours once stored and download the very
bytes the provider served; they keep working after the provider's URL expired; the final asset
is recorded in Odoo; a storage outage serves the provider's URLs until the sweep copies each
asset, once. The live stream and the client's webhook give our links too: a stored copy is an
``asset_stored`` event, and the events that name assets are sent with the links made then."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from moto.server import ThreadedMotoServer
from pydantic import SecretStr

from creativeflow.bootstrap import build_container
from creativeflow.domain.assets import CopyStatus, StoredAsset
from creativeflow_devstack.notification_sink import NotificationStore, create_sink_app
from creativeflow_devstack.object_storage import (
    ProviderAssets,
    S3Endpoint,
    ensure_bucket,
    s3_server,
)
from creativeflow_devstack.odoo_emulator import OdooEmulator
from creativeflow_devstack.stack import serve_in_thread
from tests.e2e.conftest import (
    Stack,
    api_and_simulator,
    free_port,
    stack_settings,
    wait_for,
    wait_for_status,
)
from tests.e2e.test_client_webhooks import SECRET as WEBHOOK_SECRET
from tests.e2e.test_client_webhooks import Receiver, serve_receiver
from tests.e2e.test_event_stream import Seen, as_pairs, read
from tests.e2e.test_event_stream import stored as stored_events

STORAGE_SECRET = "e2e-storage-secret-7f3a91"
SUBMIT = {"prompt": "a lighthouse at dawn", "format": "png", "width": 512, "height": 512}


class Storage:
    """Our S3 server on a port of its own, which a test may stop (an outage) and start again:
    moto keeps its buckets in this process, so they are there again after a restart."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: ThreadedMotoServer | None = None

    def start(self) -> None:
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    @contextmanager
    def down(self) -> Iterator[None]:
        self.stop()
        try:
            yield
        finally:
            self.start()


@dataclass
class AssetStack(Stack):
    storage: Storage
    provider: ProviderAssets

    def stored_assets(self, request_id: str) -> list[StoredAsset]:
        return self.container().db.run_sync(  # type: ignore[no-any-return]
            lambda repo: repo.stored_assets_for_requests([request_id])
        )

    def objects_of(self, request_id: str) -> list[str]:
        client = S3Endpoint(self.storage.url).client()
        listed = client.list_objects_v2(
            Bucket=self.settings.s3_bucket, Prefix=f"generations/{request_id}/"
        )
        return [o["Key"] for o in listed.get("Contents", [])]

    def sweep(self) -> Any:
        """One recovery sweep, as ``creativeflow sweep`` runs it: a container of its own."""

        async def run() -> Any:
            container = build_container(self.settings)
            try:
                return await container.recovery.sweep()
            finally:
                await container.close()

        return asyncio.run(run())


@pytest.fixture(scope="module")
def assets_stack(tracking_database_url: str) -> Iterator[AssetStack]:
    tag = uuid.uuid4().hex[:10]
    api_port = free_port()
    api_url = f"http://127.0.0.1:{api_port}"
    notifications = NotificationStore()
    storage = Storage()
    storage.start()
    try:
        with s3_server() as provider_url, OdooEmulator().start() as emulator:
            provider = ProviderAssets(S3Endpoint(provider_url), bucket=f"provider-{tag}")
            sink_port = free_port()
            with serve_in_thread(create_sink_app(notifications), "127.0.0.1", sink_port, "sink"):
                settings = stack_settings(
                    tracking_database_url,
                    emulator,
                    f"http://127.0.0.1:{sink_port}",
                    api_url,
                    tag,
                    prefix="e2e-assets",
                    s3_endpoint_url=storage.url,
                    s3_bucket=f"assets-{tag}",
                    s3_secret_access_key=STORAGE_SECRET,
                    s3_connect_timeout=1,
                    s3_max_attempts=1,
                    asset_url_hosts_value="127.0.0.1",
                    asset_copy_retry_seconds=0,
                    client_webhook_secret=SecretStr(WEBHOOK_SECRET),
                    client_webhook_allow_private_hosts=True,
                    client_webhook_sweep_seconds=0.2,
                    client_webhook_retry_seconds=0.2,
                )
                ensure_bucket(S3Endpoint(storage.url), settings.s3_bucket)
                with api_and_simulator(
                    settings, api_port, tag, "e2e-assets", publish_asset=provider.publish
                ) as (app, tap, simulator):
                    yield AssetStack(
                        api_url=api_url,
                        settings=settings,
                        emulator=emulator,
                        notifications=notifications,
                        tap_queue=tap,
                        simulator=simulator,
                        app=app,
                        storage=storage,
                        provider=provider,
                    )
    finally:
        storage.stop()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _all_stored(client: httpx.Client, request_id: str, key: str) -> dict[str, Any] | None:
    view: dict[str, Any] = client.get(f"/api/v1/generations/{request_id}").json()
    assets = view[key] if key == "samples" else [view[key]] if view[key] else []
    return view if assets and all(a["url_source"] == "storage" for a in assets) else None


def test_the_final_asset_is_stored_recorded_and_served_after_the_provider_url_expired(
    assets_stack: AssetStack,
) -> None:
    user = assets_stack.new_user(balance=100)
    client = assets_stack.client(user)
    request_id = client.post("/api/v1/generations", json={**SUBMIT, "samples": 2}).json()["id"]
    wait_for_status(client, request_id, "AWAITING_SELECTION")
    samples_view = wait_for(lambda: _all_stored(client, request_id, "samples"))
    bucket = f"{assets_stack.storage.url}/{assets_stack.settings.s3_bucket}/"
    for sample in samples_view["samples"]:
        assert sample["url"].startswith(bucket)
        assert "X-Amz-Signature=" in sample["url"] and sample["url_expires_at"]
    answer = client.post(f"/api/v1/generations/{request_id}/selection", json={"sample_id": "s2"})
    assert answer.status_code == 202, answer.text
    wait_for_status(client, request_id, "COMPLETED")
    # n8n was sent our copy of the chosen sample, not the provider's URL
    [final_job] = [
        j
        for j in assets_stack.jobs_published()
        if j["request_id"] == request_id and j["stage"] == "final"
    ]
    assert final_job["parameters"]["selected_sample"]["url"].startswith(bucket)
    view = wait_for(lambda: _all_stored(client, request_id, "final_asset"))
    final = view["final_asset"]

    # our copy is the provider's bytes, as the checksum the view gives says
    [stored] = [a for a in assets_stack.stored_assets(request_id) if a.role.value == "final"]
    from_provider = httpx.get(stored.source_url)
    assert from_provider.status_code == 200
    downloaded = httpx.get(final["url"])
    assert downloaded.status_code == 200 and downloaded.headers["content-type"] == "image/png"
    assert _sha256(downloaded.content) == _sha256(from_provider.content) == final["checksum_sha256"]
    assert final["byte_size"] == len(downloaded.content)

    # the provider's URL expires; ours does not depend on it
    assets_stack.provider.forget(stored.source_url)
    assert httpx.get(stored.source_url).status_code == 404
    fresh = client.get(f"/api/v1/generations/{request_id}").json()["final_asset"]
    assert fresh["url_source"] == "storage"
    assert _sha256(httpx.get(fresh["url"]).content) == final["checksum_sha256"]

    # the user was told with our link; Odoo holds the asset with the debits that paid for it
    completed = wait_for(
        lambda: [
            n
            for n in assets_stack.notifications.find(user_id=user, request_id=request_id)
            if n.type == "generation.completed"
        ]
    )
    assert completed[0].data["asset"]["url_source"] == "storage"
    assert completed[0].data["asset"]["checksum_sha256"] == final["checksum_sha256"]
    recorded = wait_for(
        lambda: [a for a in assets_stack.emulator.assets() if a["request_id"] == request_id]
    )
    assert recorded[0]["storage_key"] == stored.storage_key
    assert recorded[0]["checksum_sha256"] == final["checksum_sha256"]
    assert recorded[0]["debit_actions"] == ["final", "samples"]
    assert wait_for(
        lambda: [
            a
            for a in assets_stack.stored_assets(request_id)
            if a.role.value == "final" and a.odoo_record_id == str(recorded[0]["asset_id"])
        ]
    )


def test_a_storage_outage_serves_provider_urls_until_the_sweep_copies_each_asset_once(
    assets_stack: AssetStack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    user = assets_stack.new_user(balance=100)
    client = assets_stack.client(user)
    with assets_stack.storage.down():
        request_id = client.post("/api/v1/generations", json={**SUBMIT, "samples": 3}).json()["id"]
        wait_for_status(client, request_id, "AWAITING_SELECTION")
        tried = wait_for(
            lambda: (
                [a for a in assets_stack.stored_assets(request_id) if a.last_error]
                if len([a for a in assets_stack.stored_assets(request_id) if a.last_error]) == 3
                else None
            )
        )
        assert {a.status for a in tried} == {CopyStatus.PENDING}
        assert all("storage unreachable" in (a.last_error or "") for a in tried)
        view = client.get(f"/api/v1/generations/{request_id}").json()
        assert {s["url_source"] for s in view["samples"]} == {"provider"}
        assert [s["url"] for s in view["samples"]] == [a.source_url for a in tried]
        told = wait_for(
            lambda: assets_stack.notifications.find(user_id=user, request_id=request_id)
        )
        assert {s["url_source"] for s in told[0].data["samples"]} == {"provider"}
        # readiness reports the outage, and stays ready: copies wait
        ready = httpx.get(f"{assets_stack.api_url}/readyz")
        assert ready.status_code == 200 and ready.json()["checks"]["storage"] is False

    assert httpx.get(f"{assets_stack.api_url}/readyz").json()["checks"]["storage"] is True
    report = assets_stack.sweep()
    assert report.assets_stored >= 3, report.summary()
    assert assets_stack.sweep().assets_stored == 0
    assert len(assets_stack.objects_of(request_id)) == 3  # each asset stored once
    copies = assets_stack.stored_assets(request_id)
    assert [(a.status, a.attempts) for a in copies] == [(CopyStatus.STORED, 2)] * 3
    view = client.get(f"/api/v1/generations/{request_id}").json()
    assert {s["url_source"] for s in view["samples"]} == {"storage"}
    for sample, copy in zip(view["samples"], copies, strict=True):
        assert _sha256(httpx.get(sample["url"]).content) == copy.checksum_sha256
    # the failures were logged, the storage's secret never
    assert "storage unreachable" in caplog.text
    assert STORAGE_SECRET not in caplog.text
    assert all(STORAGE_SECRET not in (a.last_error or "") for a in copies)


def test_metrics_count_copies_by_role_and_outcome_and_the_pending_ones(
    assets_stack: AssetStack,
) -> None:
    lines = httpx.get(f"{assets_stack.api_url}/metrics").text.splitlines()
    counted = {
        frozenset(line.split("{", 1)[1].split("}", 1)[0].split(",")): float(line.split()[-1])
        for line in lines
        if line.startswith("creativeflow_asset_copies_total{")
    }
    for role in ("sample", "final"):
        for outcome in ("stored", "retrying", "failed"):
            assert frozenset({f'role="{role}"', f'outcome="{outcome}"'}) in counted
    # the flows above stored samples and a final asset, and met an outage
    assert counted[frozenset({'role="sample"', 'outcome="stored"'})] >= 1
    assert any(line.startswith("creativeflow_asset_copies_pending ") for line in lines)


# --- our links in the live stream and the client's webhook -------------------------------------


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with serve_receiver() as state:
        yield state


def _stream_client(stack: AssetStack, user: str) -> httpx.Client:
    client = stack.client(user)
    # the stack's keep-alive is 15 s: a wait for the sweep's copy is not a hang
    client.timeout = httpx.Timeout(30.0, read=60.0)
    return client


def _stored_asset(stack: AssetStack, request_id: str, role: str, asset_id: str) -> StoredAsset:
    [asset] = [
        a
        for a in stack.stored_assets(request_id)
        if a.role.value == role and a.asset_id == asset_id
    ]
    return asset


def _downloads_our_copy(
    stack: AssetStack, request_id: str, role: str, linked: dict[str, Any]
) -> None:
    """``linked`` is our signed link to the copy, and it downloads the bytes the provider
    served."""
    asset = _stored_asset(stack, request_id, role, linked["id"])
    assert linked["url_source"] == "storage" and linked["url_expires_at"]
    assert linked["url"].startswith(f"{stack.storage.url}/{stack.settings.s3_bucket}/")
    downloaded = httpx.get(linked["url"])
    assert downloaded.status_code == 200
    assert _sha256(downloaded.content) == asset.checksum_sha256 == linked["checksum_sha256"]


def test_a_stream_followed_to_the_end_waits_for_the_final_copy_and_gets_our_link(
    assets_stack: AssetStack, receiver: Receiver
) -> None:
    user = assets_stack.new_user(balance=100)
    client = _stream_client(assets_stack, user)
    answer = client.post(
        "/api/v1/generations", json={**SUBMIT, "samples": 2, "webhook_url": receiver.url}
    )
    assert answer.status_code == 202, answer.text
    request_id = answer.json()["id"]
    wait_for_status(client, request_id, "AWAITING_SELECTION")
    wait_for(lambda: _all_stored(client, request_id, "samples"))

    followed: list[tuple[list[Seen], bool]] = []
    follower = threading.Thread(target=lambda: followed.append(read(client, request_id)))
    follower.start()
    with assets_stack.storage.down():  # the final asset's first copy fails
        selected = client.post(
            f"/api/v1/generations/{request_id}/selection", json={"sample_id": "s1"}
        )
        assert selected.status_code == 202, selected.text
        wait_for_status(client, request_id, "COMPLETED")
        wait_for(lambda: _stored_asset(assets_stack, request_id, "final", "final").last_error)
        assert _stored_asset(assets_stack, request_id, "final", "final").status is (
            CopyStatus.PENDING
        )
        assert follower.is_alive(), "completed, its final copy pending: the stream waits"
    assert assets_stack.sweep().assets_stored == 1
    follower.join(timeout=60)
    assert not follower.is_alive()
    [(seen, ended)] = followed
    assert ended, "the stream ends by itself once the final asset is stored"
    assert as_pairs(seen) == stored_events(assets_stack, request_id)
    copies = [
        (s.data["data"]["role"], s.data["data"]["asset"]["id"])
        for s in seen
        if s.type == "asset_stored"
    ]
    # the samples' copies run side by side: either may be stored first
    assert sorted(copies[:2]) == [("sample", "s1"), ("sample", "s2")]
    assert copies[2:] == [("final", "final")]
    final_ready = next(s for s in seen if s.type == "final_ready")
    assert final_ready.data["data"]["asset"]["url_source"] == "provider", "sent before the copy"
    assert seen[-1].type == "asset_stored"
    _downloads_our_copy(assets_stack, request_id, "final", seen[-1].data["data"]["asset"])
    # ... the very bytes the provider served
    final = _stored_asset(assets_stack, request_id, "final", "final")
    assert _sha256(httpx.get(final.source_url).content) == final.checksum_sha256

    # a stream resumed from the start replays the result events with our links, made now
    replayed, ended = read(client, request_id, headers={"Last-Event-ID": str(seen[0].id)})
    assert ended
    samples_ready = next(s for s in replayed if s.type == "samples_ready")
    for sample in samples_ready.data["data"]["samples"]:
        _downloads_our_copy(assets_stack, request_id, "sample", sample)
    final_again = next(s for s in replayed if s.type == "final_ready")
    _downloads_our_copy(assets_stack, request_id, "final", final_again.data["data"]["asset"])
    # the journal keeps the provider's URLs as n8n reported them
    [journal] = [
        e
        for e in assets_stack.container().db.run_sync(
            lambda repo: repo.events_after(request_id, 0, 1000)
        )
        if e.type.value == "final_ready"
    ]
    assert journal.data["asset"]["url"] == final.source_url

    # the client's webhook got the same events, the stored copies with our links
    everything = stored_events(assets_stack, request_id)
    wait_for(lambda: len(receiver.accepted(request_id)) >= len(everything))
    posted = receiver.accepted(request_id)
    assert [(e["id"], e["type"]) for e in posted] == everything
    final_stored = posted[-1]
    assert (final_stored["type"], final_stored["data"]["role"]) == ("asset_stored", "final")
    _downloads_our_copy(assets_stack, request_id, "final", final_stored["data"]["asset"])
    client.close()

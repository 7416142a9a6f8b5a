"""The asset adapters over real HTTP: the S3 adapter against an S3 server (moto's, the one the
local stack runs), the download of provider URLs against real provider-style signed URLs and a
plain HTTP server, and the stored_assets table on PostgreSQL (claims with SKIP LOCKED, an
attempt that lost its lease changing nothing, the asset_stored event a stored copy commits)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from creativeflow.adapters.storage import (
    FetchConfig,
    HttpAssetFetcher,
    S3ObjectStorage,
    StorageConfig,
)
from creativeflow.adapters.tracking.database import DatabaseConfig, TrackingDatabase
from creativeflow.domain.assets import AssetRole, CopyStatus, RecordStatus, StoredAsset
from creativeflow.domain.errors import (
    AssetSourceRefused,
    AssetSourceUnavailable,
    StorageUnavailable,
)
from creativeflow.domain.events import EventType
from creativeflow.services.assets import AssetKeeper
from creativeflow.services.ports import FetchedAsset
from creativeflow_devstack.object_storage import ProviderAssets, S3Endpoint, png, s3_server
from tests.integration.test_tracking import _listener, _notified, a_request

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def s3_url() -> Iterator[str]:
    with s3_server() as url:
        yield url


@pytest.fixture
def storage(s3_url: str) -> Iterator[S3ObjectStorage]:
    adapter = S3ObjectStorage(
        StorageConfig(
            endpoint_url=s3_url,
            bucket=f"assets-{uuid.uuid4().hex[:8]}",
            access_key_id="creativeflow",
            secret_access_key="test-storage-secret",
            read_timeout=5,
        )
    )
    asyncio.run(adapter.ensure_bucket())
    yield adapter
    asyncio.run(adapter.aclose())


@pytest.fixture
def provider(s3_url: str) -> ProviderAssets:
    return ProviderAssets(S3Endpoint(s3_url), bucket=f"provider-{uuid.uuid4().hex[:8]}")


class _Pages(BaseHTTPRequestHandler):
    """Answers by path: /redirect-away, /html, /huge, /slow-5xx, else 404."""

    def do_GET(self) -> None:
        if self.path == "/redirect-away":
            self.send_response(302)
            self.send_header("Location", "http://elsewhere.invalid/x.png")
            self.end_headers()
        elif self.path == "/html":
            body = b"<!doctype html><p>expired</p>"
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/huge":
            body = png(64, 64, 1) + b"\x00" * 4096
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()  # no length: the cap must count what arrives
            self.wfile.write(body)
        elif self.path == "/busy":
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

    def log_message(self, *args: Any) -> None:
        """Quiet."""


@pytest.fixture(scope="module")
def pages() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def fetch(url: str, **config: Any) -> Any:
    async def run() -> Any:
        fetcher = HttpAssetFetcher(FetchConfig(**config))
        try:
            return await fetcher.fetch(url)
        finally:
            await fetcher.aclose()

    return asyncio.run(run())


# --- the download ------------------------------------------------------------------------------


def test_a_provider_url_downloads_hashed_and_typed_by_its_bytes(provider: ProviderAssets) -> None:
    url = provider.publish("job-1/sample-1.png", 512, 512)
    expected = httpx.get(url).content
    fetched = fetch(url, allowed_hosts=frozenset({"127.0.0.1"}))
    try:
        assert fetched.file.read() == expected
        assert fetched.byte_size == len(expected)
        assert fetched.checksum_sha256 == hashlib.sha256(expected).hexdigest()
        assert fetched.content_type == "image/png"
    finally:
        fetched.close()


def test_a_url_off_the_allowed_hosts_is_refused_before_any_request(
    provider: ProviderAssets,
) -> None:
    url = provider.publish("job-1/sample-2.png", 64, 64)
    with pytest.raises(AssetSourceRefused, match="allowed storage hosts"):
        fetch(url, allowed_hosts=frozenset({"cdn.example.com"}))


def test_a_redirect_off_the_allowed_hosts_is_refused(pages: str) -> None:
    with pytest.raises(AssetSourceRefused, match="allowed storage hosts"):
        fetch(f"{pages}/redirect-away", allowed_hosts=frozenset({"127.0.0.1"}))


def test_what_is_not_an_image_too_large_or_gone_is_refused_and_a_5xx_is_retried(
    pages: str,
) -> None:
    with pytest.raises(AssetSourceRefused, match="not a PNG"):
        fetch(f"{pages}/html")
    with pytest.raises(AssetSourceRefused, match="larger than 1000 bytes"):
        fetch(f"{pages}/huge", max_bytes=1000)
    with pytest.raises(AssetSourceRefused, match="HTTP 404"):
        fetch(f"{pages}/gone.png")
    with pytest.raises(AssetSourceUnavailable, match="HTTP 503"):
        fetch(f"{pages}/busy")


def test_an_unreachable_provider_is_unavailable_not_refused() -> None:
    with socket_closed() as url, pytest.raises(AssetSourceUnavailable, match="did not answer"):
        fetch(url, timeout=2)


class socket_closed:
    """A URL on a port nothing listens on."""

    def __enter__(self) -> str:
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        return f"http://127.0.0.1:{port}/x.png"

    def __exit__(self, *exc: object) -> None:
        return None


# --- the bucket -----------------------------------------------------------------------------------


def test_a_stored_copy_downloads_through_its_signed_link_with_the_same_bytes(
    storage: S3ObjectStorage, provider: ProviderAssets
) -> None:
    url = provider.publish("job-2/final.png", 1024, 1024)
    fetched = fetch(url)
    try:
        asyncio.run(storage.put("generations/r-1/final/final-abc", fetched))
    finally:
        fetched.close()
    link = storage.presign_get("generations/r-1/final/final-abc", timedelta(minutes=15))
    assert "X-Amz-Signature=" in link and "X-Amz-Expires=900" in link
    assert f"/{storage.bucket}/generations/r-1/final/final-abc?" in link  # path-style
    answer = httpx.get(link)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "image/png"
    assert hashlib.sha256(answer.content).hexdigest() == fetched.checksum_sha256
    # the provider's copy expiring changes nothing for ours
    provider.forget(url)
    assert httpx.get(url).status_code == 404
    assert httpx.get(link).content == answer.content


def test_signed_links_name_the_public_endpoint_and_never_the_secret(s3_url: str) -> None:
    adapter = S3ObjectStorage(
        StorageConfig(
            endpoint_url=s3_url,
            public_endpoint_url="https://assets.example.com",
            bucket="assets",
            access_key_id="creativeflow",
            secret_access_key="never-in-a-link-or-a-repr",
        )
    )
    link = adapter.presign_get("k", timedelta(seconds=60))
    assert link.startswith("https://assets.example.com/assets/k?")
    assert "never-in-a-link" not in link and "never-in-a-link" not in repr(adapter._config)
    asyncio.run(adapter.aclose())


def test_an_unreachable_bucket_is_unavailable_and_not_ready() -> None:
    with socket_closed() as url:
        endpoint = url.rsplit("/", 1)[0]
    adapter = S3ObjectStorage(
        StorageConfig(
            endpoint_url=endpoint,
            bucket="assets",
            access_key_id="creativeflow",
            secret_access_key="unreachable-secret-913",
            connect_timeout=1,
            max_attempts=1,
        )
    )

    async def run() -> None:
        assert not await adapter.check()
        asset = FetchedAsset(io.BytesIO(b"x"), 1, hashlib.sha256(b"x").hexdigest(), "image/png")
        with pytest.raises(StorageUnavailable, match="storage unreachable") as refused:
            await adapter.put("k", asset)
        assert "unreachable-secret-913" not in refused.value.detail
        await adapter.aclose()

    asyncio.run(run())


# --- the table ------------------------------------------------------------------------------------


@pytest.fixture
def db(tracking_database_url: str) -> Iterator[TrackingDatabase]:
    database = TrackingDatabase(DatabaseConfig(url=tracking_database_url, pool_size=4))
    yield database
    database.close()


def a_copy(request_id: str, user_id: str, asset_id: str, due: datetime) -> StoredAsset:
    return StoredAsset(
        id=str(uuid.uuid4()),
        request_id=request_id,
        user_id=user_id,
        job_id=str(uuid.uuid4()),
        role=AssetRole.SAMPLE,
        asset_id=asset_id,
        source_url=f"https://cdn.example.com/{asset_id}.png",
        storage_key=f"generations/{request_id}/sample/{asset_id}-{uuid.uuid4().hex[:12]}",
        created_at=NOW,
        next_attempt_at=due,
    )


def test_due_copies_are_claimed_once_and_a_late_attempt_changes_nothing(
    db: TrackingDatabase,
) -> None:
    request = a_request()
    due, later = (
        a_copy(request.id, request.user_id, "s1", NOW - timedelta(seconds=1)),
        a_copy(request.id, request.user_id, "s2", NOW + timedelta(minutes=1)),
    )

    def setup(repo: Any) -> None:
        repo.add_request(request)
        repo.add_stored_assets([due, later])

    db.run_sync(setup)
    lease = timedelta(minutes=5)
    claimed = [
        c
        for c in db.run_sync(lambda repo: repo.claim_due_copies(NOW, lease, 100))
        if c.request_id == request.id
    ]
    assert [c.asset_id for c in claimed] == ["s1"]
    assert claimed[0].attempts == 1 and claimed[0].next_attempt_at == NOW + lease
    # leased: a second sweep (another replica) takes nothing
    again = db.run_sync(lambda repo: repo.claim_due_copies(NOW, lease, 100))
    assert [c for c in again if c.request_id == request.id] == []
    assert db.run_sync(lambda repo: repo.count_pending_copies()) >= 2

    copy = claimed[0]
    copy.stored(checksum_sha256="ab" * 32, byte_size=10, content_type="image/png", at=NOW)
    assert db.run_sync(lambda repo: repo.save_stored_asset(copy))
    late = db.run_sync(lambda repo: repo.stored_assets_for_requests([request.id]))[0]
    late.attempt_failed("a slower attempt failed", NOW)
    assert not db.run_sync(lambda repo: repo.save_stored_asset(late))
    [first, second] = db.run_sync(lambda repo: repo.stored_assets_for_requests([request.id]))
    assert (first.status, first.checksum_sha256, first.byte_size) == (
        CopyStatus.STORED,
        "ab" * 32,
        10,
    )
    assert second.status is CopyStatus.PENDING and second.attempts == 0


def test_a_claim_skips_rows_another_transaction_holds(db: TrackingDatabase) -> None:
    request = a_request()
    copy = a_copy(request.id, request.user_id, "s1", NOW - timedelta(seconds=1))

    def setup(repo: Any) -> None:
        repo.add_request(request)
        repo.add_stored_assets([copy])

    db.run_sync(setup)
    holding = threading.Event()
    release = threading.Event()

    def hold(repo: Any) -> None:
        assert [c.id for c in repo.claim_due_copies(NOW, timedelta(minutes=5), 10)] == [copy.id]
        holding.set()
        release.wait(10)

    thread = threading.Thread(target=db.run_sync, args=(hold,))
    thread.start()
    assert holding.wait(10)
    try:
        seen = db.run_sync(lambda repo: repo.claim_due_copies(NOW, timedelta(minutes=5), 10))
        assert copy.id not in [c.id for c in seen]
    finally:
        release.set()
        thread.join(10)


def test_a_stored_final_asset_owed_to_odoo_is_claimed_once_until_recorded(
    db: TrackingDatabase,
) -> None:
    request = a_request()
    final = a_copy(request.id, request.user_id, "final", NOW)
    final.role = AssetRole.FINAL
    final.stored(checksum_sha256="cd" * 32, byte_size=99, content_type="image/png", at=NOW)
    final.claim_record(NOW - timedelta(minutes=10), timedelta(minutes=5))  # a lease run out

    def setup(repo: Any) -> None:
        repo.add_request(request)
        repo.add_stored_assets([final])

    db.run_sync(setup)
    lease = timedelta(minutes=5)

    def mine(found: list[StoredAsset]) -> list[StoredAsset]:
        return [a for a in found if a.request_id == request.id]

    [claimed] = mine(db.run_sync(lambda repo: repo.claim_due_records(NOW, lease, 100)))
    assert claimed.record_attempts == 2 and claimed.next_record_at == NOW + lease
    assert mine(db.run_sync(lambda repo: repo.claim_due_records(NOW, lease, 100))) == []
    claimed.recorded("42", NOW)
    db.run_sync(lambda repo: repo.save_asset_record(claimed))
    later = NOW + timedelta(hours=1)
    assert mine(db.run_sync(lambda repo: repo.claim_due_records(later, lease, 100))) == []
    [kept] = db.run_sync(lambda repo: repo.stored_assets_for_requests([request.id]))
    assert (kept.record_status, kept.odoo_record_id, kept.recorded_at) == (
        RecordStatus.RECORDED,
        "42",
        NOW,
    )


class _FixedClock:
    def now(self) -> datetime:
        return NOW


class _NoNotices:
    def send(self, notification: Any) -> None:
        raise AssertionError("copy() alone sends nothing")

    async def aclose(self) -> None:
        return None


def test_a_stored_copy_commits_its_asset_stored_event_with_a_wake_up_and_no_outbox_row(
    db: TrackingDatabase,
    tracking_database_url: str,
    storage: S3ObjectStorage,
    provider: ProviderAssets,
) -> None:
    request = a_request()
    copy = a_copy(request.id, request.user_id, "s1", NOW)
    copy.source_url = provider.publish(f"{request.id}/sample-1.png", 32, 32)
    copy.claim(NOW, timedelta(minutes=5))

    def setup(repo: Any) -> None:
        repo.add_request(request)
        repo.add_stored_assets([copy])

    db.run_sync(setup)
    before = [e.id for e in db.run_sync(lambda repo: repo.events_after(request.id, 0, 100))]
    listener = _listener(tracking_database_url)

    async def attempt(asset: StoredAsset) -> Any:
        fetcher = HttpAssetFetcher(FetchConfig(allowed_hosts=frozenset({"127.0.0.1"})))
        keeper = AssetKeeper(db, fetcher, storage, _NoNotices(), _FixedClock())
        try:
            return await keeper.copy(asset)
        finally:
            await fetcher.aclose()

    try:
        late = copy_of(copy)
        assert asyncio.run(attempt(copy)).stored == 1
        assert _notified(listener) == [request.id]
        events = db.run_sync(lambda repo: repo.events_after(request.id, max(before), 100))
        assert [(e.type, e.data, e.correlation_id) for e in events] == [
            (
                EventType.ASSET_STORED,
                {"role": "sample", "asset": {"id": "s1", "url": copy.source_url}},
                request.correlation_id,
            )
        ]
        # never on the events exchange: no outbox row waits for it
        pending = db.run_sync(lambda repo: repo.lock_pending_events(1000, request.id))
        assert events[0].id not in {e.id for e in pending}
        # a second attempt that finds the copy saved writes no event
        assert asyncio.run(attempt(late)).stored == 0
        assert db.run_sync(lambda repo: repo.events_after(request.id, events[0].id or 0, 100)) == []
        assert _notified(listener) == []
    finally:
        listener.close()


def copy_of(asset: StoredAsset) -> StoredAsset:
    return replace(asset)

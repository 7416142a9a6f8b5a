"""Stored assets on fakes of every port: what a callback owes, the copy after the commit, the
links users get, retries by the sweep, what is given up, and the leases that keep two copies
of one asset from running at once. The integration and e2e tiers prove the same on PostgreSQL,
a real S3 server over HTTP, RabbitMQ and the Odoo emulator."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest

from creativeflow.adapters.odoo.errors import OdooOutcomeUnknown, OdooUnavailable
from creativeflow.domain.assets import (
    AssetLink,
    AssetRole,
    CopyStatus,
    RecordStatus,
    key_part,
    link_for,
    sniff_image_type,
    storage_key,
)
from creativeflow.domain.jobs import CallbackEvent
from creativeflow.domain.model import Sample
from creativeflow.services.assets import AssetConfig, AssetKeeper
from creativeflow.services.callbacks import CallbackOutcome, CallbackService
from creativeflow.services.generations import GenerationService
from creativeflow.services.recovery import Recovery
from creativeflow_devstack.object_storage import png as make_png
from tests.unit.fakes import FakeFetcher, FakeStorage
from tests.unit.test_use_cases import USER, World

SAMPLE_URLS = ("https://assets.test/s1.png", "https://assets.test/s2.png")
FINAL_URL = "https://assets.test/final.png"


def png(seed: int) -> bytes:
    """A real 1x1 PNG whose colour depends on ``seed``."""
    return make_png(1, 1, seed)


class AssetWorld(World):
    """The use cases wired with the asset keeper, as the composition root wires them when the
    storage is configured."""

    def __init__(self, **config: object) -> None:
        super().__init__()
        self.fetcher = FakeFetcher()
        self.storage = FakeStorage()
        for index, url in enumerate((*SAMPLE_URLS, FINAL_URL)):
            self.fetcher.files[url] = png(index)
        self.keeper = AssetKeeper(
            self.db,
            self.fetcher,
            self.storage,
            self.notifier,
            self.clock,
            AssetConfig(**config),  # type: ignore[arg-type]
            credits=self.credits,
        )
        self.callbacks = CallbackService(
            self.db, self.refunder, self.notifier, self.clock, assets=self.keeper
        )
        self.generations = GenerationService(
            self.db,
            self.credits,
            self.publisher,
            self.clock,
            self.generations._config,
            self.refunder,
            assets=self.keeper,
        )
        self.recovery = Recovery(
            self.db, self.credits, self.refunder, self.notifier, self.clock, assets=self.keeper
        )

    async def samples_arrive(self, request_id: str) -> None:
        samples = tuple(Sample(f"s{i + 1}", url) for i, url in enumerate(SAMPLE_URLS))
        outcome = await self.callback(request_id, CallbackEvent.SAMPLES_READY, samples=samples)
        assert outcome is CallbackOutcome.APPLIED

    async def final_arrives(self, request_id: str) -> None:
        await self.generations.select(USER, request_id, "s1")
        outcome = await self.callback(
            request_id, CallbackEvent.FINAL_READY, asset=Sample("final-1", FINAL_URL)
        )
        assert outcome is CallbackOutcome.APPLIED


@pytest.fixture
def world() -> AssetWorld:
    return AssetWorld()


# --- the pure rules -------------------------------------------------------------------------------


def test_a_storage_key_keeps_n8ns_ids_to_safe_characters() -> None:
    assert key_part("../../etc/passwd") == "etc_passwd"
    assert key_part("s1") == "s1"
    assert key_part("\x00\n") == "asset"
    assert len(key_part("x" * 500)) == 40
    key = storage_key("0b3f", AssetRole.FINAL, "final 1/..", "abc")
    assert key == "generations/0b3f/final/final_1-abc"


def test_an_image_type_is_read_from_the_bytes_not_the_name() -> None:
    assert sniff_image_type(png(1)[:12]) == "image/png"
    assert sniff_image_type(b"\xff\xd8\xff\xe0" + b"\x00" * 8) == "image/jpeg"
    assert sniff_image_type(b"RIFF\x00\x00\x00\x00WEBP") == "image/webp"
    assert sniff_image_type(b"II*\x00" + b"\x00" * 8) == "image/tiff"
    assert sniff_image_type(b"<!doctype html>") is None


def test_retries_wait_longer_each_time_up_to_a_cap() -> None:
    config = AssetConfig(retry_base=timedelta(seconds=15), retry_max=timedelta(minutes=10))
    delays = [config.retry_delay(n).total_seconds() for n in range(1, 9)]
    assert delays == [15, 30, 60, 120, 240, 480, 600, 600]


def test_a_link_to_a_copy_of_another_url_is_not_served_for_this_one() -> None:
    ours = AssetLink(url="https://storage.test/k", stored=True, source_url="https://a.test/old")
    links = {("sample", "s1"): ours}
    assert link_for(links, AssetRole.SAMPLE, Sample("s1", "https://a.test/old")) is ours
    fallback = link_for(links, AssetRole.SAMPLE, Sample("s1", "https://a.test/new"))
    assert fallback.url == "https://a.test/new" and not fallback.stored
    assert not link_for(links, AssetRole.FINAL, Sample("s1", "https://a.test/old")).stored


# --- the copy after the callback ------------------------------------------------------------------


@pytest.mark.asyncio
async def test_samples_are_copied_after_the_commit_and_the_user_gets_our_links(
    world: AssetWorld,
) -> None:
    request_id = await world.submit()
    await world.samples_arrive(request_id)
    # the callback's transaction wrote one leased copy per sample; nobody was told yet
    pending = world.db.stored_assets(request_id)
    assert [(a.asset_id, a.status, a.attempts) for a in pending] == [
        ("s1", CopyStatus.PENDING, 1),
        ("s2", CopyStatus.PENDING, 1),
    ]
    assert world.notifier.types(request_id) == []
    await world.keeper.aclose()

    stored = world.db.stored_assets(request_id)
    assert all(a.status is CopyStatus.STORED for a in stored)
    for asset, url in zip(stored, SAMPLE_URLS, strict=True):
        body = world.fetcher.files[url]
        assert world.storage.objects[asset.storage_key] == (body, "image/png")
        assert asset.checksum_sha256 == hashlib.sha256(body).hexdigest()
        assert asset.byte_size == len(body)
        assert asset.storage_key.startswith(f"generations/{request_id}/sample/")
    [notice] = world.notifier.sent
    assert [s["url_source"] for s in notice.data["samples"]] == ["storage", "storage"]
    assert notice.data["samples"][0]["url"].startswith("https://storage.test/assets/generations/")
    assert notice.data["samples"][0]["url_expires_at"] is not None

    view = await world.generations.get(USER, request_id)
    link = view.links[("sample", "s1")]
    assert link.stored and link.url == world.storage.presign_get(
        stored[0].storage_key, world.keeper.config.url_ttl
    )
    assert link.expires_at == world.clock.now() + world.keeper.config.url_ttl


@pytest.mark.asyncio
async def test_the_final_asset_is_stored_under_its_role_and_announced_with_our_link(
    world: AssetWorld,
) -> None:
    request_id = await world.submit()
    await world.samples_arrive(request_id)
    await world.final_arrives(request_id)
    await world.keeper.aclose()
    final = [a for a in world.db.stored_assets(request_id) if a.role is AssetRole.FINAL]
    assert [(a.asset_id, a.status) for a in final] == [("final-1", CopyStatus.STORED)]
    completed = [n for n in world.notifier.sent if n.type.value == "generation.completed"]
    assert completed[0].data["asset"]["url_source"] == "storage"
    assert completed[0].data["asset"]["checksum_sha256"] == final[0].checksum_sha256


@pytest.mark.asyncio
async def test_n8n_fetches_the_chosen_sample_from_our_copy_for_as_long_as_the_final_may_take(
    world: AssetWorld,
) -> None:
    request_id = await world.submit()
    await world.samples_arrive(request_id)
    await world.keeper.aclose()
    [_, second] = world.db.stored_assets(request_id)
    await world.generations.select(USER, request_id, "s2")
    final_job = world.publisher.jobs_for(request_id)[-1]
    chosen = final_job.parameters["selected_sample"]
    assert chosen["id"] == "s2"
    assert chosen["url"] == world.storage.presign_get(second.storage_key, timedelta(minutes=30))


@pytest.mark.asyncio
async def test_a_sample_not_stored_yet_is_sent_to_n8n_with_the_providers_url(
    world: AssetWorld,
) -> None:
    world.storage.down = True
    request_id = await world.submit()
    await world.samples_arrive(request_id)
    await world.keeper.aclose()
    await world.generations.select(USER, request_id, "s1")
    chosen = world.publisher.jobs_for(request_id)[-1].parameters["selected_sample"]
    assert chosen == {"id": "s1", "url": SAMPLE_URLS[0]}


@pytest.mark.asyncio
async def test_a_storage_outage_serves_provider_urls_until_the_sweep_copies_once(
    world: AssetWorld,
) -> None:
    world.storage.down = True
    request_id = await world.submit()
    await world.samples_arrive(request_id)
    await world.keeper.aclose()
    [notice] = world.notifier.sent
    assert [s["url"] for s in notice.data["samples"]] == list(SAMPLE_URLS)
    assert {s["url_source"] for s in notice.data["samples"]} == {"provider"}
    waiting = world.db.stored_assets(request_id)
    assert {a.status for a in waiting} == {CopyStatus.PENDING}
    assert all("unreachable" in (a.last_error or "") for a in waiting)

    world.storage.down = False
    early = await world.recovery.sweep()  # the retry is not due yet
    assert early.assets_stored == 0 and world.storage.puts == []
    world.clock.advance(timedelta(seconds=16))
    report = await world.recovery.sweep()
    assert report.assets_stored == 2 and not report.errors
    again = await world.recovery.sweep()
    assert again.assets_stored == 0
    assert len(world.storage.puts) == 2  # each asset stored once
    assert {a.status for a in world.db.stored_assets(request_id)} == {CopyStatus.STORED}
    view = await world.generations.get(USER, request_id)
    assert all(link.stored for link in view.links.values()) and len(view.links) == 2


@pytest.mark.asyncio
async def test_a_provider_url_that_is_gone_is_given_up_at_once(world: AssetWorld) -> None:
    del world.fetcher.files[SAMPLE_URLS[1]]
    request_id = await world.submit()
    await world.samples_arrive(request_id)
    await world.keeper.aclose()
    by_id = {a.asset_id: a for a in world.db.stored_assets(request_id)}
    assert by_id["s1"].status is CopyStatus.STORED
    assert by_id["s2"].status is CopyStatus.FAILED and "404" in (by_id["s2"].last_error or "")
    world.clock.advance(timedelta(hours=1))
    assert (await world.recovery.sweep()).assets_stored == 0
    assert world.fetcher.fetched.count(SAMPLE_URLS[1]) == 1
    view = await world.generations.get(USER, request_id)
    assert link_for(view.links, AssetRole.SAMPLE, view.samples[1]).url == SAMPLE_URLS[1]


@pytest.mark.asyncio
async def test_a_copy_is_given_up_after_its_last_attempt() -> None:
    world = AssetWorld(max_attempts=3, retry_base=timedelta(seconds=1))
    world.fetcher.down = True
    request_id = await world.submit()
    await world.samples_arrive(request_id)
    await world.keeper.aclose()
    for _ in range(4):
        world.clock.advance(timedelta(minutes=1))
        await world.recovery.sweep()
    copies = world.db.stored_assets(request_id)
    assert [(a.status, a.attempts) for a in copies] == [(CopyStatus.FAILED, 3)] * 2


@pytest.mark.asyncio
async def test_a_copy_left_by_a_crash_waits_for_its_lease_then_the_sweep_makes_it(
    world: AssetWorld,
) -> None:
    world.keeper.after_commit = lambda assets, notifications: None  # type: ignore[method-assign]
    request_id = await world.submit()
    await world.samples_arrive(request_id)
    assert (await world.recovery.sweep()).assets_stored == 0  # still leased to the lost copy
    world.clock.advance(world.keeper.config.lease + timedelta(seconds=1))
    assert (await world.recovery.sweep()).assets_stored == 2
    assert [a.attempts for a in world.db.stored_assets(request_id)] == [2, 2]


@pytest.mark.asyncio
async def test_an_attempt_that_finishes_second_changes_nothing(world: AssetWorld) -> None:
    request_id = await world.submit()
    await world.samples_arrive(request_id)
    [first, _] = world.db.stored_assets(request_id)
    await world.keeper.aclose()
    # a slower attempt on the same row (its lease had run out) reports a failure afterwards
    first.attempt_failed("late failure", world.clock.now())
    assert not await world.db.run(lambda repo: repo.save_stored_asset(first))
    assert world.db.stored_assets(request_id)[0].status is CopyStatus.STORED


@pytest.mark.asyncio
async def test_without_storage_the_flow_is_unchanged_and_users_get_provider_urls() -> None:
    world = World()
    request_id = await world.submit()
    await world.samples_arrive(request_id)
    assert world.notifier.types(request_id) == ["generation.samples_ready"]
    assert world.db.stored_assets(request_id) == []
    assert (await world.generations.get(USER, request_id)).links == {}


# --- the final asset's record in Odoo -------------------------------------------------------------


@pytest.mark.asyncio
async def test_the_stored_final_asset_is_recorded_in_odoo_with_the_debits_that_paid_for_it(
    world: AssetWorld,
) -> None:
    request_id = await world.submit()
    await world.samples_arrive(request_id)
    await world.final_arrives(request_id)
    await world.keeper.aclose()
    [final] = [a for a in world.db.stored_assets(request_id) if a.role is AssetRole.FINAL]
    assert final.record_status is RecordStatus.RECORDED and final.odoo_record_id
    [recorded] = [a for a in world.credits.assets() if a["request_id"] == request_id]
    assert recorded["storage_key"] == final.storage_key
    assert recorded["checksum_sha256"] == final.checksum_sha256
    assert recorded["byte_size"] == final.byte_size
    assert str(recorded["asset_id"]) == final.odoo_record_id
    assert recorded["debit_actions"] == ["final", "samples"]
    assert len(recorded["ledger_entry_ids"]) == 2
    # samples are copies for choosing, not what was delivered: never recorded
    samples = [a for a in world.db.stored_assets(request_id) if a.role is AssetRole.SAMPLE]
    assert {a.record_status for a in samples} == {None}
    assert (await world.recovery.sweep()).assets_recorded == 0


@pytest.mark.asyncio
async def test_a_record_odoo_missed_is_made_by_the_sweep_once(world: AssetWorld) -> None:
    request_id = await world.submit()
    await world.samples_arrive(request_id)
    world.credits.fail_next("record_generated_asset", OdooUnavailable("down"))
    await world.final_arrives(request_id)
    await world.keeper.aclose()
    [final] = [a for a in world.db.stored_assets(request_id) if a.role is AssetRole.FINAL]
    assert final.status is CopyStatus.STORED and final.record_status is RecordStatus.PENDING
    assert [a for a in world.credits.assets() if a["request_id"] == request_id] == []

    # the reply of the next try is lost after Odoo recorded it: the one after is a replay
    world.credits.fail_next("record_generated_asset", OdooOutcomeUnknown("lost"), apply_first=True)
    world.clock.advance(timedelta(seconds=16))
    lost = await world.recovery.sweep()
    assert lost.assets_recorded == 0 and lost.asset_records_left == 1
    world.clock.advance(timedelta(seconds=31))
    report = await world.recovery.sweep()
    assert report.assets_recorded == 1
    assert len([a for a in world.credits.assets() if a["request_id"] == request_id]) == 1
    [final] = [a for a in world.db.stored_assets(request_id) if a.role is AssetRole.FINAL]
    assert final.record_status is RecordStatus.RECORDED and final.record_attempts == 3
    world.clock.advance(timedelta(hours=1))
    assert (await world.recovery.sweep()).assets_recorded == 0

"""Keeping what users paid for: copying each reported asset to object storage, and the links
users download it from.

The rules (also in docs/decisions.md, "Stored assets"):

1. A ``samples_ready`` or ``final_ready`` callback writes one pending copy per asset in its own
   transaction (so a crash after the commit loses none), each already leased to the copy that
   starts after the commit; n8n's callback is answered without waiting for it.
2. The copy downloads the provider's URL (its host must be an ``ASSET_URL_HOSTS`` host at every
   redirect, a size cap, an image signature), hashes it (SHA-256) and uploads it to the bucket.
   Only then are the callback's notifications sent, with our links; if the copy failed they go
   with the provider's URLs.
3. A failed attempt is retried by the recovery sweep with a growing delay; an answer that is not
   an image we keep (or gone) is not retried. After ``max_attempts`` the copy is ``failed``.
4. Users are given short-lived signed GET links to stored copies (with when they expire), and
   the provider's URL only until the copy is stored.
5. Once the final asset is stored it is recorded in Odoo (``record_generated_asset``: its key,
   checksum, size and the debits that paid for it), right away and, if Odoo did not answer,
   by the sweep until it has; Odoo records a request's asset once, so a retry is safe. A
   refusal is left to operators (logged, ``record_status`` refused).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from creativeflow.domain.assets import (
    AssetLink,
    AssetRole,
    LinkKey,
    StoredAsset,
    asset_stored_event,
    link_for,
    plan_copies,
)
from creativeflow.domain.errors import AssetCopyFailed, CreditServiceUnavailable, CreditsRefused
from creativeflow.domain.events import EventType, RequestEvent
from creativeflow.domain.generated_assets import GeneratedAsset
from creativeflow.domain.jobs import Stage
from creativeflow.domain.model import CreditOperation, GenerationRequest, Sample
from creativeflow.domain.notifications import Notification
from creativeflow.domain.states import CreditOperationKind, CreditOperationStatus

from .ports import (
    AssetFetcher,
    Clock,
    CreditLedger,
    Notifier,
    ObjectStorage,
    Tracking,
    TrackingStore,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AssetConfig:
    url_ttl: timedelta = timedelta(minutes=15)
    # how long an attempt may run before another replica may take the copy over
    lease: timedelta = timedelta(minutes=5)
    max_attempts: int = 8
    retry_base: timedelta = timedelta(seconds=15)
    retry_max: timedelta = timedelta(minutes=10)
    # copies of one callback (or sweep batch) running at once
    concurrency: int = 4

    def retry_delay(self, attempts: int) -> timedelta:
        """15 s, 30 s, 60 s, ... at most ``retry_max``, after the ``attempts``-th attempt."""
        seconds = self.retry_base.total_seconds() * 2 ** max(attempts - 1, 0)
        return min(timedelta(seconds=seconds), self.retry_max)


@dataclass
class CopyReport:
    stored: int = 0
    retrying: int = 0
    failed: int = 0
    # the final asset's record in Odoo
    recorded: int = 0
    records_left: int = 0

    def add(self, other: CopyReport) -> None:
        self.stored += other.stored
        self.retrying += other.retrying
        self.failed += other.failed
        self.recorded += other.recorded
        self.records_left += other.records_left


CopyObserver = Callable[[str, str], None]  # (role, outcome: stored / retrying / failed)


class AssetKeeper:
    def __init__(
        self,
        db: TrackingStore,
        fetcher: AssetFetcher,
        storage: ObjectStorage,
        notifier: Notifier,
        clock: Clock,
        config: AssetConfig | None = None,
        *,
        credits: CreditLedger | None = None,
        observe: CopyObserver | None = None,
    ) -> None:
        self._credits = credits
        self._db = db
        self._fetcher = fetcher
        self._storage = storage
        self._notifier = notifier
        self._clock = clock
        self.config = config or AssetConfig()
        self._observe = observe
        self._running: set[asyncio.Task[None]] = set()

    # --- 1. what a callback owes ------------------------------------------------------------------

    def plan(self, request: GenerationRequest, job_id: str, stage: Stage) -> list[StoredAsset]:
        """The copies of the assets a callback just gave ``request``, leased to the copy that
        :meth:`after_commit` starts."""
        return plan_copies(request, job_id, stage, self._clock.now(), self.config.lease)

    def after_commit(
        self, assets: Sequence[StoredAsset], notifications: Sequence[Notification]
    ) -> None:
        """Copy ``assets`` in the background, then send ``notifications`` with the links."""
        task = asyncio.get_running_loop().create_task(self._copy_then_notify(assets, notifications))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _copy_then_notify(
        self, assets: Sequence[StoredAsset], notifications: Sequence[Notification]
    ) -> None:
        try:
            await self.copy_all(assets)
        except Exception:  # the sweep copies it later; the user must still be told
            log.exception("copying %d assets failed", len(assets))
        links = self.links(assets)
        for notification in notifications:
            self._notifier.send(with_links(notification, links))

    async def aclose(self) -> None:
        """Wait for the copies in flight (their notifications too)."""
        if self._running:
            await asyncio.gather(*list(self._running), return_exceptions=True)

    # --- 2. one attempt ---------------------------------------------------------------------------

    async def copy_all(self, assets: Iterable[StoredAsset]) -> CopyReport:
        """Attempts at several copies, at most ``config.concurrency`` at once."""
        gate = asyncio.Semaphore(self.config.concurrency)

        async def one(asset: StoredAsset) -> CopyReport:
            async with gate:
                return await self.copy(asset)

        report = CopyReport()
        for done in await asyncio.gather(*(one(asset) for asset in assets)):
            report.add(done)
        return report

    async def copy(self, asset: StoredAsset) -> CopyReport:
        """One attempt at a copy this process holds the lease of."""
        report = CopyReport()
        try:
            fetched = await self._fetcher.fetch(asset.source_url)
            try:
                await self._storage.put(asset.storage_key, fetched)
            finally:
                fetched.close()
        except AssetCopyFailed as failure:
            give_up = failure.permanent or asset.attempts >= self.config.max_attempts
            retry_at = (
                None if give_up else self._clock.now() + self.config.retry_delay(asset.attempts)
            )
            asset.attempt_failed(failure.detail, retry_at)
            outcome = "failed" if give_up else "retrying"
            log.warning(
                "copy of %s %s of request %s, attempt %d: %s (%s)",
                asset.role,
                asset.asset_id,
                asset.request_id,
                asset.attempts,
                failure.detail,
                outcome,
                extra={"request_id": asset.request_id, "storage_key": asset.storage_key},
            )
        else:
            now = self._clock.now()
            asset.stored(
                checksum_sha256=fetched.checksum_sha256,
                byte_size=fetched.byte_size,
                content_type=fetched.content_type,
                at=now,
            )
            if asset.owes_record() and self._credits is not None:
                asset.claim_record(now, self.config.lease)  # recorded right below
            outcome = "stored"
        saved = await self._db.run(lambda repo: _save(repo, asset, self._clock.now()))
        if not saved:
            return report  # another attempt finished first: its outcome stands
        if outcome == "stored":
            report.stored += 1
            log.info(
                "stored %s %s of request %s (%d bytes)",
                asset.role,
                asset.asset_id,
                asset.request_id,
                asset.byte_size,
                extra={"request_id": asset.request_id, "storage_key": asset.storage_key},
            )
        elif outcome == "failed":
            report.failed += 1
        else:
            report.retrying += 1
        if self._observe is not None:
            self._observe(asset.role.value, outcome)
        if outcome == "stored" and asset.record_status is not None:
            report.add(await self.record(asset))
        return report

    async def record(self, asset: StoredAsset) -> CopyReport:
        """One attempt at recording a stored final asset in Odoo (its record lease held)."""
        report = CopyReport()
        if self._credits is None:
            return report
        generated = await self._db.run(lambda repo: _generated_asset(repo, asset))
        try:
            recorded = await self._credits.record_generated_asset(generated)
        except CreditsRefused as refusal:
            asset.record_refused(f"{refusal.code}: {refusal.detail}")
            log.error(
                "Odoo refused to record the final asset of request %s: %s",
                asset.request_id,
                refusal.code,
                extra={"request_id": asset.request_id, "storage_key": asset.storage_key},
            )
        except CreditServiceUnavailable as fault:
            retry_at = self._clock.now() + self.config.retry_delay(asset.record_attempts)
            asset.record_failed(type(fault).__name__, retry_at)
            report.records_left += 1
            log.warning(
                "the final asset of request %s is not recorded in Odoo yet: %s",
                asset.request_id,
                type(fault).__name__,
                extra={"request_id": asset.request_id},
            )
        else:
            asset.recorded(str(recorded.odoo_id), self._clock.now())
            report.recorded += 1
        await self._db.run(lambda repo: repo.save_asset_record(asset))
        return report

    # --- 3. the sweep -----------------------------------------------------------------------------

    async def copy_due(self, limit: int) -> tuple[int, CopyReport]:
        """Claim up to ``limit`` copies nobody is working on and try each once; returns how many
        were claimed (a full batch: more may wait) and what came of them."""
        now = self._clock.now()
        claimed = await self._db.run(
            lambda repo: repo.claim_due_copies(now, self.config.lease, limit)
        )
        return len(claimed), await self.copy_all(claimed)

    async def record_due(self, limit: int) -> tuple[int, CopyReport]:
        """Claim up to ``limit`` stored final assets Odoo has not recorded yet and try each."""
        if self._credits is None:
            return 0, CopyReport()
        now = self._clock.now()
        claimed = await self._db.run(
            lambda repo: repo.claim_due_records(now, self.config.lease, limit)
        )
        report = CopyReport()
        for asset in claimed:
            report.add(await self.record(asset))
        return len(claimed), report

    # --- 4. links ---------------------------------------------------------------------------------

    def links(
        self, assets: Iterable[StoredAsset], *, ttl: timedelta | None = None
    ) -> dict[LinkKey, AssetLink]:
        """Signed links of the stored ones among ``assets``, by (role, asset id), valid for
        ``ttl`` (``url_ttl`` by default); the newest copy of an id wins (a second round of
        samples may reuse ids)."""
        now = self._clock.now()
        ttl = ttl or self.config.url_ttl
        found: dict[LinkKey, AssetLink] = {}
        for asset in sorted(assets, key=lambda a: a.created_at):
            if not asset.is_stored:
                continue
            found[(asset.role.value, asset.asset_id)] = AssetLink(
                url=self._storage.presign_get(asset.storage_key, ttl),
                stored=True,
                expires_at=now + ttl,
                checksum_sha256=asset.checksum_sha256,
                byte_size=asset.byte_size,
                source_url=asset.source_url,
            )
        return found

    def attach(self, requests: Sequence[GenerationRequest], assets: Iterable[StoredAsset]) -> None:
        """Give each request the links of its stored assets (for its view)."""
        by_request: dict[str, list[StoredAsset]] = {}
        for asset in assets:
            by_request.setdefault(asset.request_id, []).append(asset)
        for request in requests:
            request.links = self.links(by_request.get(request.id, ()))


def paying_debits(operations: Iterable[CreditOperation]) -> tuple[str, ...]:
    """The actions of the debits that paid for a request's work: applied, with no refund
    asked for."""
    operations = list(operations)
    refunding = {
        op.action
        for op in operations
        if op.kind is CreditOperationKind.REFUND and op.status is not CreditOperationStatus.REFUSED
    }
    return tuple(
        op.action
        for op in operations
        if op.kind is CreditOperationKind.DEBIT
        and op.status is CreditOperationStatus.APPLIED
        and op.action not in refunding
    )


def _generated_asset(repo: Tracking, asset: StoredAsset) -> GeneratedAsset:
    request = repo.get_request(asset.request_id)
    assert request is not None and asset.checksum_sha256 and asset.byte_size
    return GeneratedAsset(
        request_id=asset.request_id,
        user_id=asset.user_id,
        storage_key=asset.storage_key,
        format=request.format.lower(),
        width=asset.width or request.width,
        height=asset.height or request.height,
        checksum_sha256=asset.checksum_sha256,
        byte_size=asset.byte_size,
        debit_actions=paying_debits(repo.operations_for_request(asset.request_id)),
    )


def _save(repo: Tracking, asset: StoredAsset, now: datetime) -> bool:
    """Save an attempt's outcome; a copy just stored adds its ``asset_stored`` event to the
    request's journal in the same transaction (its commit wakes the live streams and the
    client's webhook)."""
    if not repo.save_stored_asset(asset):
        return False
    if asset.is_stored:
        request = repo.get_request(asset.request_id)
        if request is not None:
            repo.add_events([asset_stored_event(asset, request.correlation_id, now)])
    return True


def _linked(
    role: AssetRole, asset: dict[str, Any], links: dict[LinkKey, AssetLink]
) -> dict[str, Any]:
    sample = Sample(id=str(asset.get("id")), url=str(asset.get("url")))
    link = link_for(links, role, sample)
    return {**asset, **link.to_dict()}


def _data_with_links(
    data: dict[str, Any], links: dict[LinkKey, AssetLink], role: AssetRole = AssetRole.FINAL
) -> dict[str, Any]:
    """``samples`` (samples) and ``asset`` (of ``role``) with the link users should follow."""
    data = dict(data)
    if isinstance(data.get("samples"), list):
        data["samples"] = [
            _linked(AssetRole.SAMPLE, s, links) if isinstance(s, dict) else s
            for s in data["samples"]
        ]
    if isinstance(data.get("asset"), dict):
        data["asset"] = _linked(role, data["asset"], links)
    return data


def with_links(notification: Notification, links: dict[LinkKey, AssetLink]) -> Notification:
    """The notification with each asset's URL replaced by the link users should follow."""
    return replace(notification, data=_data_with_links(notification.data, links))


def render_events(
    events: Sequence[RequestEvent], links: dict[LinkKey, AssetLink]
) -> list[RequestEvent]:
    """Each event that names assets with their links from ``links`` (stored: our signed link,
    ``url_source`` storage; else the provider's URL, ``url_source`` provider); the others as
    they are."""
    rendered = []
    for event in events:
        if event.type.carries_assets:
            role = AssetRole.FINAL
            if event.type is EventType.ASSET_STORED and event.data.get("role") == "sample":
                role = AssetRole.SAMPLE
            event = replace(event, data=_data_with_links(event.data, links, role))
        rendered.append(event)
    return rendered

"""Posting a request's events to the webhook its client gave at the submit (see
:mod:`creativeflow.domain.client_webhooks` for the rules a receiver can rely on).

Delivery starts when a request's events are committed (the same wake-up as the live streams,
:meth:`ClientWebhookDelivery.kick`) and is picked up by a periodic sweep
(:meth:`ClientWebhookDelivery.deliver_due`) for retries, for the events whose wake-up never came
and after a crash. Either way the webhook is first claimed in a short transaction: a lease
(``FOR UPDATE SKIP LOCKED``, then ``lease_until``) that no other replica takes while it runs, so
no connection or row lock is held during the posts. The posts go one event at a time, in id
order, and stop at the first one not accepted; how far they got is recorded when the lease
ends. The events that name assets are posted with their links made at the post (our signed
link once the copy is stored, else the provider's URL), as the live streams send them.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from creativeflow.domain.assets import StoredAsset
from creativeflow.domain.client_webhooks import (
    ClientWebhook,
    ClientWebhookStatus,
    ClientWebhookUndelivered,
    DeliveryRules,
    message_id,
)
from creativeflow.domain.events import RequestEvent, public_view

from .assets import render_events
from .ports import ClientWebhookSender, Clock, Tracking, TrackingStore

if TYPE_CHECKING:
    from .assets import AssetKeeper

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ClientWebhookConfig:
    rules: DeliveryRules = field(default_factory=DeliveryRules)
    # longer than a batch of posts can take (batch times the sender's timeout)
    lease: timedelta = timedelta(minutes=2)
    batch: int = 10  # events posted per claim
    sweep_limit: int = 50  # webhooks claimed per sweep


class ClientWebhookDelivery:
    def __init__(
        self,
        db: TrackingStore,
        sender: ClientWebhookSender,
        clock: Clock,
        config: ClientWebhookConfig,
        *,
        assets: AssetKeeper | None = None,
    ) -> None:
        self._assets = assets
        self._db = db
        self._sender = sender
        self._clock = clock
        self._config = config
        self._running: dict[str, asyncio.Task[int]] = {}
        self._again: set[str] = set()
        self._closing = False

    def kick(self, request_id: str) -> None:
        """New events of ``request_id`` were committed: deliver them now (on the event loop's
        thread; a delivery already running for it goes round once more)."""
        if not self._closing:
            self._start(request_id)

    def _start(self, request_id: str) -> None:
        if request_id in self._running:
            self._again.add(request_id)
            return
        task = asyncio.get_running_loop().create_task(self._deliver_quietly(request_id))
        self._running[request_id] = task
        task.add_done_callback(lambda _: self._finished(request_id))

    def _finished(self, request_id: str) -> None:
        self._running.pop(request_id, None)
        if request_id in self._again:
            self._again.discard(request_id)
            self._start(request_id)

    async def _deliver_quietly(self, request_id: str) -> int:
        try:
            return await self.deliver_due(request_id)
        except Exception:  # the sweep tries again; a wake-up must never fail anything
            log.warning("webhook delivery of %s failed", request_id, exc_info=True)
            return 0

    async def deliver_due(self, request_id: str | None = None) -> int:
        """Claim the webhooks due now (of ``request_id`` only, if given) and post their events;
        returns how many events were accepted."""
        config = self._config
        now = self._clock.now()

        def claim(repo: Tracking) -> list[ClientWebhook]:
            return repo.claim_client_webhooks(
                now, now + config.lease, config.sweep_limit, request_id
            )

        hooks = await self._db.run(claim)
        delivered = await asyncio.gather(*(self._deliver(hook) for hook in hooks))
        return sum(delivered)

    async def _deliver(self, hook: ClientWebhook) -> int:
        def read(repo: Tracking) -> tuple[list[RequestEvent], list[StoredAsset]]:
            events = repo.events_after(hook.request_id, hook.delivered_through, self._config.batch)
            if self._assets is None or not any(e.type.carries_assets for e in events):
                return events, []
            return events, repo.stored_assets_for_requests([hook.request_id])

        events, assets = await self._db.run(read)
        links = self._assets.links(assets) if self._assets is not None else {}
        through, error, accepted = hook.delivered_through, None, 0
        for event in render_events(events, links):
            assert event.id is not None
            body = json.dumps(public_view(event), separators=(",", ":")).encode()
            try:
                await self._sender.send(hook.url, message_id(event.id), body)
            except ClientWebhookUndelivered as refused:
                error = str(refused)[:500]
                break
            through, accepted = event.id, accepted + 1
        now = self._clock.now()
        if error is None:
            attempts, status, next_at = 0, ClientWebhookStatus.ACTIVE, now
        else:
            attempts = hook.attempts + 1
            status, next_at = self._config.rules.after_failure(attempts, now)
            log.info(
                "webhook of %s not delivered (%s), attempt %d: %s",
                hook.request_id,
                error,
                attempts,
                "given up" if status is ClientWebhookStatus.FAILED else f"again at {next_at}",
            )

        def settle(repo: Tracking) -> None:
            repo.settle_client_webhook(
                hook.request_id,
                delivered_through=through,
                attempts=attempts,
                status=status,
                next_attempt_at=next_at,
                last_error=error,
            )

        await self._db.run(settle)
        if error is None and len(events) >= self._config.batch:
            self._again.add(hook.request_id)  # more than a batch waits: go round again
        return accepted

    async def aclose(self) -> None:
        """Start no new delivery; let those in flight finish, with the rounds they still owe."""
        self._closing = True
        while self._running:
            await asyncio.gather(*list(self._running.values()), return_exceptions=True)

"""The events exchange's relay: publishes the outbox's result events once their change committed.

A request's samples ready, final asset ready and failure are written to ``generation_events``
(``publish_pending``) in the same transaction as the change itself, so a change that commits
always leaves its event behind, whatever happens to the process next. The relay then publishes
them. The rules (also in docs/decisions.md, "Result events from the outbox"):

1. Right after a change that may have made a result event commits (a callback, a failed paid
   step), :meth:`EventRelay.after_commit` publishes that request's pending events; the recovery
   sweep (in process and ``creativeflow sweep``) publishes every one still pending, oldest first.
2. Events are taken ``FOR UPDATE SKIP LOCKED`` in the transaction that marks them published: two
   relays (two replicas, or a callback and a sweep) never hold the same event, so they never
   publish it concurrently.
3. An event is marked published only once the broker confirmed it. A crash between the confirm
   and the commit publishes it again on the next relay, with the same ``event_id`` (the AMQP
   ``message_id``): delivery is at least once, and consumers de-duplicate on it.
4. A failed publish stops the batch (the events behind it stay pending, so a request's events go
   out in their order) and, for a while, the relays right after commits: callbacks are not kept
   waiting by a broker that is down; the sweep keeps trying on its own schedule. After the
   pause one relay after a commit tries again (the others still leave their events to the
   sweep) until a publish is confirmed.
5. At most ``concurrency`` relays after commits run at once (the publisher's threads): each holds
   a database connection while the broker confirms, so a broker that stops answering holds that
   many, never the whole pool.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from creativeflow.domain.errors import DispatchUnavailable
from creativeflow.domain.events import EventMessage

from .ports import Clock, EventPublisher, Tracking, TrackingStore

log = logging.getLogger(__name__)


@dataclass
class RelayReport:
    taken: int = 0  # pending events locked by this relay
    published: int = 0  # confirmed by the broker and marked published
    failed: int = 0  # publishes that failed (the event stays pending)


class EventRelay:
    def __init__(
        self,
        db: TrackingStore,
        publisher: EventPublisher,
        clock: Clock,
        *,
        batch: int = 100,
        pause_after_failure: timedelta = timedelta(seconds=30),
        concurrency: int = 2,
    ) -> None:
        if batch < 1 or concurrency < 1:
            raise ValueError("batch and concurrency must be at least 1")
        self._db = db
        self._publisher = publisher
        self._clock = clock
        self._batch = batch
        self._pause_after_failure = pause_after_failure
        self._paused_until: datetime | None = None
        self._failing = False  # the last publish failed
        self._probing = False  # a relay after a commit is trying the broker again
        self._concurrency = concurrency
        self._slots: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None

    @property
    def publisher(self) -> EventPublisher:
        return self._publisher

    @property
    def batch(self) -> int:
        """The most events one relay takes."""
        return self._batch

    async def after_commit(self, request_id: str) -> RelayReport:
        """Publish ``request_id``'s pending events now. Never raises: what is not published
        here stays pending for the sweep."""
        if self._failing:
            paused = self._paused_until is not None and self._clock.now() < self._paused_until
            if paused or self._probing:
                return RelayReport()
            self._probing = True  # one relay finds out whether the broker is back
            try:
                return await self._relay(request_id)
            finally:
                self._probing = False
        async with self._slots_of_this_loop():
            if self._failing:  # it failed while this one waited
                return RelayReport()
            return await self._relay(request_id)

    def _slots_of_this_loop(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots[0] is not loop:
            self._slots = (loop, asyncio.Semaphore(self._concurrency))
        return self._slots[1]

    async def _relay(self, request_id: str) -> RelayReport:
        try:
            return await self._db.run(lambda repo: self._publish(repo, request_id))
        except Exception:
            log.exception(
                "publishing the events of request %s failed; the sweep retries", request_id
            )
            return RelayReport()

    async def publish_batch(self) -> RelayReport:
        """One batch of the oldest pending events of any request (the sweep's step)."""
        return await self._db.run(lambda repo: self._publish(repo, None))

    def _publish(self, repo: Tracking, request_id: str | None) -> RelayReport:
        report = RelayReport()
        events = repo.lock_pending_events(self._batch, request_id)
        report.taken = len(events)
        for event in events:
            assert event.id is not None
            if not event.type.is_published:  # set pending by hand: nothing to publish
                log.warning(
                    "event %s is a %s event, never published; cleared", event.id, event.type
                )
                repo.mark_event_published(event.id, self._clock.now())
                continue
            message = EventMessage(event)
            try:
                self._publisher.publish(message)
            except DispatchUnavailable as fault:
                report.failed += 1
                self._failing = True
                self._paused_until = self._clock.now() + self._pause_after_failure
                log.warning(
                    "event %s (%s) was not published: %s; it stays pending",
                    message.event_id,
                    message.event_type,
                    fault,
                    extra={"request_id": event.request_id},
                )
                break
            self._failing = False
            repo.mark_event_published(event.id, self._clock.now())
            report.published += 1
            log.debug(
                "event %s (%s) published",
                message.event_id,
                message.event_type,
                extra={"request_id": event.request_id},
            )
        return report

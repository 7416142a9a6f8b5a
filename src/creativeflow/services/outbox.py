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
   waiting by a broker that is down; the sweep keeps trying on its own schedule.
"""

from __future__ import annotations

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
    ) -> None:
        if batch < 1:
            raise ValueError("batch must be at least 1")
        self._db = db
        self._publisher = publisher
        self._clock = clock
        self._batch = batch
        self._pause_after_failure = pause_after_failure
        self._paused_until: datetime | None = None

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
        if self._paused_until is not None and self._clock.now() < self._paused_until:
            return RelayReport()
        try:
            return await self._db.run(lambda repo: self._publish(repo, request_id))
        except Exception:
            log.exception(
                "publishing the events of request %s failed; the sweep retries", request_id
            )
            return RelayReport()

    async def publish_batch(self) -> RelayReport:
        """One batch of the oldest pending events of any request (the sweep's step)."""
        report = await self._db.run(lambda repo: self._publish(repo, None))
        if report.failed == 0 and report.taken:
            self._paused_until = None
        return report

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
                self._paused_until = self._clock.now() + self._pause_after_failure
                log.warning(
                    "event %s (%s) was not published: %s; it stays pending",
                    message.event_id,
                    message.event_type,
                    fault,
                    extra={"request_id": event.request_id},
                )
                break
            repo.mark_event_published(event.id, self._clock.now())
            report.published += 1
            log.info(
                "event %s (%s) published",
                message.event_id,
                message.event_type,
                extra={"request_id": event.request_id},
            )
        return report

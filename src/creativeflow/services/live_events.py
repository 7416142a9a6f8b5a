"""The live events of a request, for its owner: what ``GET /api/v1/generations/{id}/events``
streams.

Every event is read from the tracking table (``generation_events``), in id order, after the
client's cursor: the table is the only source, so a stream served by any replica, after any
restart or reconnect, gives exactly the events after the cursor, none twice. A wake-up (the
PostgreSQL ``NOTIFY`` each commit with events sends, relayed by the listener) only says when to
read again; a stream also reads again at every keep-alive, so a wake-up that never came delays
an event by one keep-alive interval at most, and loses none.

Rules:

- A stream ends once the request has ended (a terminal status) with no credit operation still
  being settled (a refund in flight may still bring ``credits_refunded``) and every event after
  the cursor has been sent. A stream of such a request with nothing after the cursor is not
  opened at all (``None``: the API answers ``204``, which tells an ``EventSource`` to stop
  reconnecting).
- A completed request's stream also stays open while its final asset's copy is pending, for
  at most ``final_copy_wait_seconds`` after the copy was planned, so a client following to the
  end gets the ``asset_stored`` event with our link; a copy that takes longer (a provider or
  storage outage) ends the stream without it (the request's view, the notification and the
  client's webhook give it once stored).
- The events that name assets (``samples_ready``, ``final_ready``, ``asset_stored``) are sent
  with the links of the request as the view gives them, made when they are sent: our signed
  link once stored, else the provider's URL. The request's stored assets are read once per
  batch that needs them, in the batch's transaction.
- A stream lasts at most ``max_lifetime_seconds``; the client reconnects with its cursor.
- At most ``max_streams`` streams are open in a process and ``max_streams_per_user`` for one
  user in a process (:class:`~creativeflow.domain.errors.TooManyEventStreams`,
  :class:`~creativeflow.domain.errors.EventStreamsBusy`).
- :meth:`LiveEvents.drain` ends every open stream (the server is stopping): its clients
  reconnect, to another replica, with their cursor.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from creativeflow.domain.assets import AssetRole, CopyStatus, StoredAsset
from creativeflow.domain.errors import (
    EventStreamsBusy,
    InvalidEventCursor,
    NotFound,
    TooManyEventStreams,
)
from creativeflow.domain.events import RequestEvent
from creativeflow.domain.states import CreditOperationStatus, Status

from .assets import render_events
from .ports import Clock, Tracking, TrackingStore

if TYPE_CHECKING:
    from .assets import AssetKeeper

log = logging.getLogger(__name__)

# a journal entry in one of these may still move credits, and so bring an event
_SETTLING = frozenset({CreditOperationStatus.PENDING, CreditOperationStatus.UNKNOWN})


@dataclass(frozen=True, slots=True)
class StreamLimits:
    max_streams: int = 1000
    max_streams_per_user: int = 5
    keepalive_seconds: float = 15.0
    max_lifetime_seconds: float = 3600.0
    batch: int = 100  # events read per transaction
    retry_after_seconds: int = 10  # what a refused client is told to wait
    # how long after its copy was planned a completed request's stream waits for its final
    # asset to be stored
    final_copy_wait_seconds: float = 120.0


class KeepAlive:
    """Nothing new since the last read: the stream sends a comment so proxies keep it open."""

    __slots__ = ()


KEEP_ALIVE = KeepAlive()


@dataclass(frozen=True, slots=True)
class _Read:
    events: list[RequestEvent]
    finished: bool  # ended, nothing being settled: no event will follow these
    # the request's stored assets, read after the events when one of them names assets
    assets: list[StoredAsset] | None = None


def _awaits_final_copy(assets: list[StoredAsset], now: datetime, wait: timedelta) -> bool:
    return any(
        a.role is AssetRole.FINAL and a.status is CopyStatus.PENDING and now < a.created_at + wait
        for a in assets
    )


def _read_after(
    repo: Tracking,
    request_id: str,
    after: int,
    limit: int,
    user_id: str | None = None,
    final_copy_wait: tuple[datetime, timedelta] | None = None,
    stored_copies: bool = False,
) -> _Read | None:
    """The events after ``after``, and whether any can follow them. The status, the journal
    and the final copy are read before the events: a change and its events commit together,
    so an ended request read here has all its events in the read that follows. With
    ``final_copy_wait`` (now, how long), a completed request whose final asset's copy is
    pending and was planned less than that long ago has not finished. With ``stored_copies``
    (assets are copied), the request's stored assets come with events that name assets."""
    request = repo.get_request(request_id)
    if request is None or (user_id is not None and request.user_id != user_id):
        return None
    settling = any(o.status in _SETTLING for o in repo.operations_for_request(request_id))
    finished = request.status.is_terminal and not settling
    if finished and final_copy_wait is not None and request.status is Status.COMPLETED:
        now, wait = final_copy_wait
        if _awaits_final_copy(repo.stored_assets_for_requests([request_id]), now, wait):
            finished = False
    if user_id is not None and after > 0:
        # the cursor must be one of this request's events: another request's id would skip
        # (or repeat) events without anybody noticing
        first = repo.events_after(request_id, after - 1, 1)
        if not first or first[0].id != after:
            raise InvalidEventCursor(
                f"event {after} is not an event of request {request_id}", last_event_id=after
            )
    events = repo.events_after(request_id, after, limit)
    assets = None
    if stored_copies and any(event.type.carries_assets for event in events):
        # after the events: a copy stored since is linked too
        assets = repo.stored_assets_for_requests([request_id])
    return _Read(events, finished, assets)


class LiveEvents:
    """Open streams of this process, and the wake-ups that tell them to read again. Every
    method runs on the event loop's thread (the listener hands its wake-ups over to it)."""

    def __init__(
        self,
        db: TrackingStore,
        limits: StreamLimits,
        *,
        assets: AssetKeeper | None = None,
        clock: Clock | None = None,
    ) -> None:
        """``assets``: the keeper that links stored copies (None: assets are not copied, the
        provider's URLs are given); ``clock``: with it, a completed request's stream waits for
        its final copy (``final_copy_wait_seconds``)."""
        self._db = db
        self.limits = limits
        self._assets = assets
        self._clock = clock
        self._waiting: dict[str, set[asyncio.Event]] = collections.defaultdict(set)
        self._per_user: collections.Counter[str] = collections.Counter()
        self._open = 0
        self._draining = False

    @property
    def open_streams(self) -> int:
        return self._open

    @property
    def draining(self) -> bool:
        return self._draining

    def wake(self, request_id: str) -> None:
        """New events of ``request_id`` were committed (by any replica)."""
        for waiter in self._waiting.get(request_id, ()):
            waiter.set()

    def wake_all(self) -> None:
        """Wake-ups may have been missed (the listener reconnected): every stream reads."""
        for waiters in self._waiting.values():
            for waiter in waiters:
                waiter.set()

    def drain(self) -> None:
        """End every open stream and open no new one: the server is stopping."""
        self._draining = True
        self.wake_all()

    async def open(self, user_id: str, request_id: str, after: int) -> EventStream | None:
        """A stream of the user's request from the event after ``after`` (0: from the first);
        None when the request has ended and nothing follows ``after``. Raises ``NotFound`` for
        another user's request, ``InvalidEventCursor`` for a cursor that is not one of its
        events, and the limits' errors."""
        self._reserve(user_id)
        waiter = asyncio.Event()
        self._waiting[request_id].add(waiter)  # before the first read: no wake-up is missed
        try:
            first = await self._db.run(
                functools.partial(
                    _read_after,
                    request_id=request_id,
                    after=after,
                    limit=self.limits.batch,
                    user_id=user_id,
                    final_copy_wait=self._final_copy_wait(),
                    stored_copies=self._assets is not None,
                )
            )
        except BaseException:
            self.release(user_id, request_id, waiter)
            raise
        if first is None:
            self.release(user_id, request_id, waiter)
            raise NotFound("generation request not found", request_id=request_id)
        if first.finished and not first.events:
            self.release(user_id, request_id, waiter)
            return None
        return EventStream(self, user_id, request_id, after, self._rendered(first), waiter)

    def _reserve(self, user_id: str) -> None:
        retry = self.limits.retry_after_seconds
        if self._draining:
            raise EventStreamsBusy("the server is stopping", retry_after=retry)
        if self._open >= self.limits.max_streams:
            raise EventStreamsBusy(
                f"{self._open} event streams open, the most this process serves",
                retry_after=retry,
            )
        if self._per_user[user_id] >= self.limits.max_streams_per_user:
            raise TooManyEventStreams(self.limits.max_streams_per_user, retry_after=retry)
        self._open += 1
        self._per_user[user_id] += 1

    def release(self, user_id: str, request_id: str, waiter: asyncio.Event) -> None:
        self._open -= 1
        self._per_user[user_id] -= 1
        if self._per_user[user_id] <= 0:
            del self._per_user[user_id]
        waiters = self._waiting.get(request_id)
        if waiters is not None:
            waiters.discard(waiter)
            if not waiters:
                del self._waiting[request_id]

    async def read_after(self, request_id: str, after: int) -> _Read:
        read = await self._db.run(
            functools.partial(
                _read_after,
                request_id=request_id,
                after=after,
                limit=self.limits.batch,
                final_copy_wait=self._final_copy_wait(),
                stored_copies=self._assets is not None,
            )
        )
        return self._rendered(read) if read is not None else _Read([], True)

    def _final_copy_wait(self) -> tuple[datetime, timedelta] | None:
        if self._assets is None or self._clock is None:
            return None
        return self._clock.now(), timedelta(seconds=self.limits.final_copy_wait_seconds)

    def _rendered(self, read: _Read) -> _Read:
        """The read's events with their assets' links, made now (outside the transaction); the
        provider's URLs when assets are not copied."""
        links = self._assets.links(read.assets) if self._assets is not None and read.assets else {}
        return _Read(render_events(read.events, links), read.finished)


class EventStream:
    """One open stream. Iterate :meth:`items` once; the stream's place among the limits is given
    back when the iteration ends, however it ends (the client gone included)."""

    def __init__(
        self,
        hub: LiveEvents,
        user_id: str,
        request_id: str,
        after: int,
        first: _Read,
        waiter: asyncio.Event,
    ) -> None:
        self._hub = hub
        self.user_id = user_id
        self.request_id = request_id
        self._cursor = after
        self._first = first
        self._waiter = waiter
        self._released = False

    @property
    def cursor(self) -> int:
        """The id of the last event handed out."""
        return self._cursor

    async def items(self) -> AsyncIterator[RequestEvent | KeepAlive]:
        limits = self._hub.limits
        loop = asyncio.get_running_loop()
        ends_at = loop.time() + limits.max_lifetime_seconds
        read = self._first
        try:
            while True:
                for event in read.events:
                    assert event.id is not None
                    self._cursor = event.id
                    yield event
                more_now = len(read.events) >= limits.batch
                if read.finished and not more_now:
                    return
                if self._hub.draining:
                    return
                if not more_now:
                    left = ends_at - loop.time()
                    if left <= 0:
                        return
                    woken = await self._wait(min(limits.keepalive_seconds, left))
                    if self._hub.draining or loop.time() >= ends_at:
                        return
                    if not woken:
                        yield KEEP_ALIVE
                # cleared before the read: a wake-up during it makes the next wait return at once
                self._waiter.clear()
                try:
                    read = await self._hub.read_after(self.request_id, self._cursor)
                except Exception:
                    # the database is away: end the stream; the client reconnects with its
                    # cursor and loses nothing
                    log.warning(
                        "event stream of %s ended: its events could not be read",
                        self.request_id,
                        exc_info=True,
                    )
                    return
        finally:
            self.close()

    async def _wait(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self._waiter.wait(), seconds)
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        """Give the stream's place back (idempotent; also when it was never iterated)."""
        if not self._released:
            self._released = True
            self._hub.release(self.user_id, self.request_id, self._waiter)

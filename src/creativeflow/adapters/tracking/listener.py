"""One ``LISTEN`` connection per process: the wake-ups of the live event streams.

Each commit that writes events of a request sends ``NOTIFY creativeflow_generation_events
'<request id>'`` (see :data:`~creativeflow.adapters.tracking.repository.EVENTS_CHANNEL`), from
any replica. A thread of its own keeps a dedicated psycopg2 connection (autocommit, outside the
pool) listening on the channel and hands every request id it hears to the event loop
(``on_wake``). A notification is only a wake-up: the streams read the table.

When the connection breaks, notifications sent meanwhile are lost, so after every (re)connect
``on_resync`` is called and every stream reads again from its cursor. The connection is checked
with a ``SELECT 1`` when it has been quiet for ``idle_check_seconds``, TCP keep-alives find a
peer that vanished, and a failed connect is retried every ``reconnect_seconds``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import select
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg2
import psycopg2.extensions
from sqlalchemy.engine import make_url

from .repository import EVENTS_CHANNEL

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ListenerConfig:
    url: str = field(repr=False)  # a SQLAlchemy or libpq URL of the tracking database
    channel: str = EVENTS_CHANNEL
    connect_timeout_s: int = 5
    reconnect_seconds: float = 2.0
    idle_check_seconds: float = 30.0


def libpq_dsn(url: str) -> str:
    """The libpq form of a SQLAlchemy URL (``postgresql+psycopg2://`` loses its driver)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class EventsListener:
    """Listens in a thread; :meth:`start` on the event loop that receives the wake-ups."""

    def __init__(
        self,
        config: ListenerConfig,
        on_wake: Callable[[str], None],
        on_resync: Callable[[], None],
    ) -> None:
        self._config = config
        self._on_wake = on_wake
        self._on_resync = on_resync
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        # written to by stop(), so the thread's select() returns at once
        self._interrupt_r, self._interrupt_w = socket.socketpair()
        self._connected = False
        self.reconnects = 0

    @property
    def connected(self) -> bool:
        """Whether the LISTEN connection is up (a metric; streams work without it, slower)."""
        return self._connected

    def start(self) -> None:
        if self._thread is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="events-listener", daemon=True)
        self._thread.start()

    async def aclose(self) -> None:
        await asyncio.to_thread(self.stop)

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._interrupt_w.send(b"x")
        if self._thread is not None:
            self._thread.join(timeout=self._config.connect_timeout_s + 5)
            self._thread = None
        for end in (self._interrupt_r, self._interrupt_w):
            end.close()

    # --- the thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            connection = None
            try:
                connection = self._connect()
                self._connected = True
                self._hand_over(self._on_resync)  # whatever was sent while we were away
                self._listen(connection)
            except (psycopg2.Error, OSError) as error:
                if not self._stop.is_set():
                    log.warning(
                        "events listener lost the database (%s); reconnecting in %ss",
                        type(error).__name__,
                        self._config.reconnect_seconds,
                    )
            except Exception:  # the thread must outlive any surprise: streams depend on it
                log.exception(
                    "events listener failed; reconnecting in %ss", self._config.reconnect_seconds
                )
            finally:
                self._connected = False
                if connection is not None:
                    connection.close()
            if self._stop.wait(self._config.reconnect_seconds):
                return
            self.reconnects += 1

    def _connect(self) -> psycopg2.extensions.connection:
        connection = psycopg2.connect(
            libpq_dsn(self._config.url),
            connect_timeout=self._config.connect_timeout_s,
            application_name="creativeflow-events-listener",
            keepalives=1,
            keepalives_idle=30,
            keepalives_interval=10,
            keepalives_count=3,
        )
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f'LISTEN "{self._config.channel}"')
        return connection

    def _listen(self, connection: psycopg2.extensions.connection) -> None:
        while not self._stop.is_set():
            readable, _, _ = select.select(
                [connection, self._interrupt_r], [], [], self._config.idle_check_seconds
            )
            if self._interrupt_r in readable:
                return
            if not readable:
                with connection.cursor() as cursor:  # quiet for long: is the peer still there?
                    cursor.execute("SELECT 1")
            connection.poll()
            heard = list(dict.fromkeys(n.payload for n in connection.notifies))
            connection.notifies.clear()
            for request_id in heard:
                self._hand_over(self._on_wake, request_id)

    def _hand_over(self, callback: Callable[..., None], *args: str) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        # the loop may close meanwhile: then nobody is waiting any more
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(callback, *args)

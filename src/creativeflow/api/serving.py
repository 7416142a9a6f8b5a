"""Serving the app with uvicorn, so that stopping is clean with event streams open.

uvicorn waits for every open response to end before it runs the app's lifespan shutdown, and an
event stream lasts until its request ends: a stop would wait for up to the streams' lifetime.
:class:`Server` ends them first (:func:`~creativeflow.api.app.stop_event_streams`); their
clients reconnect, to another replica, with their ``Last-Event-ID``.
"""

from __future__ import annotations

import socket

import uvicorn

from creativeflow.api.app import stop_event_streams


class Server(uvicorn.Server):
    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        stop_event_streams(self.config.app)
        await super().shutdown(sockets)

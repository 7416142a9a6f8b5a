"""Refusing, before a server starts, a port that something else holds: one line naming the port
and the setting to change, where the server itself would die with a bare ``OSError``."""

from __future__ import annotations

import errno
import socket


class PortInUse(RuntimeError):
    """A server of the product cannot listen where its settings say."""


def require_free_port(host: str, port: int, setting: str) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host or "0.0.0.0", port))
        except OSError as error:
            if error.errno in (errno.EADDRINUSE, errno.EACCES):
                raise PortInUse(
                    f"port {port} is in use (or not allowed): stop what holds it, or change "
                    f"{setting}"
                ) from None
            raise

"""How to reach Odoo: one frozen value, built by the composition root from the settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

RpcProtocol = Literal["xmlrpc", "jsonrpc", "json2"]
"""``xmlrpc`` and ``jsonrpc`` are Odoo's RPC services (deprecated from Odoo 19); ``json2`` is Odoo
19's ``POST /json/2/<model>/<method>`` with a bearer API key."""
PROTOCOLS: tuple[RpcProtocol, ...] = ("xmlrpc", "jsonrpc", "json2")

_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True, repr=False)
class OdooConfig:
    """Where Odoo is and how the orchestrator's technical user logs in.

    ``secret`` is the user's password or, better, an API key (Odoo accepts a key of scope ``rpc``
    wherever a password is). With ``protocol="json2"`` it must be an API key: JSON-2 takes no
    password, and it identifies the user by the key alone (``login`` then only names the user in
    logs and messages). ``connect_timeout`` bounds the TCP connection (and TLS handshake);
    ``read_timeout`` bounds each wait for the reply once the request is sent. ``max_attempts``
    counts every try of one call, the first included.
    """

    url: str
    database: str
    login: str
    secret: str
    protocol: RpcProtocol
    connect_timeout: float = 3.0
    read_timeout: float = 10.0
    max_attempts: int = 3
    backoff_base: float = 0.1
    backoff_max: float = 2.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ValueError("OdooConfig.url must be an http:// or https:// URL with a host")
        try:
            parts.port  # noqa: B018  (urlsplit checks the port only when asked)
        except ValueError as exc:
            raise ValueError("OdooConfig.url has an invalid port") from exc
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError("OdooConfig.url must be the server root (Odoo serves RPC at /)")
        if parts.username or parts.password:
            raise ValueError("OdooConfig.url must not carry credentials; use login and secret")
        if self.protocol not in PROTOCOLS:
            raise ValueError("OdooConfig.protocol must be 'xmlrpc', 'jsonrpc' or 'json2'")
        if not self.database or not self.login or not self.secret:
            raise ValueError("OdooConfig needs a database, a login and a secret")
        if self.connect_timeout <= 0 or self.read_timeout <= 0:
            raise ValueError("OdooConfig timeouts must be positive")
        if self.max_attempts < 1:
            raise ValueError("OdooConfig.max_attempts must be at least 1")
        if self.backoff_base < 0 or self.backoff_max < 0:
            raise ValueError("OdooConfig backoff values must not be negative")

    def __repr__(self) -> str:
        return (
            f"OdooConfig(url={self.url!r}, database={self.database!r}, login={self.login!r}, "
            f"secret='********', protocol={self.protocol!r}, "
            f"connect_timeout={self.connect_timeout!r}, read_timeout={self.read_timeout!r}, "
            f"max_attempts={self.max_attempts!r}, backoff_base={self.backoff_base!r}, "
            f"backoff_max={self.backoff_max!r})"
        )

    @property
    def scheme(self) -> str:
        return urlsplit(self.url).scheme

    @property
    def host(self) -> str:
        hostname = urlsplit(self.url).hostname
        assert hostname is not None  # checked in __post_init__
        return hostname

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or _DEFAULT_PORTS[parts.scheme]

    @property
    def root_url(self) -> str:
        """``scheme://host:port`` without a trailing slash (IPv6 hosts bracketed)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

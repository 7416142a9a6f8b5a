"""Users and credentials, checked the way Odoo 18 checks them on its RPC routes.

``login`` and ``authenticate`` answer the uid, or ``False`` for a wrong login or secret; every
``execute``/``execute_kw`` checks (db, uid, password) again and raises ``AccessDenied`` when they
do not match. An API key is accepted wherever the password is, as Odoo does for keys of scope
``rpc``. A database name other than the seeded one fails as PostgreSQL makes Odoo fail.

Logging in to a real Odoo hashes the secret with 600,000 pbkdf2 rounds (about a second); a
client that logs in per request is slow for that reason. ``pbkdf2_rounds`` reproduces that cost
on ``login``/``authenticate`` when asked to, and is 0 (free) by default so tests stay fast.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from . import errors
from .seed import UserSeed

_COST_SALT = b"creativeflow-odoo-emulator"


class UserDirectory:
    """The ``res.users`` the emulator knows, by login and by uid."""

    def __init__(self, database: str, users: Iterable[UserSeed], pbkdf2_rounds: int = 0) -> None:
        self._database = database
        self._by_login = {user.login: user for user in users}
        self._by_uid = {user.uid: user for user in self._by_login.values()}
        self._pbkdf2_rounds = pbkdf2_rounds

    @property
    def database(self) -> str:
        return self._database

    def login(self, database: object, login: object, secret: object) -> int | bool:
        """The uid for a good login and password or API key, else ``False`` (never raises)."""
        self.require_database(database)
        self._pay_hashing_cost(secret)
        user = self._by_login.get(login) if isinstance(login, str) else None
        if user is None or not _matches(user, secret):
            return False
        return user.uid

    def check(self, database: object, uid: int, secret: object) -> UserSeed:
        """The caller of an ``execute``/``execute_kw``, or ``AccessDenied``."""
        self.require_database(database)
        user = self._by_uid.get(uid)
        if user is None or not _matches(user, secret):
            raise errors.AccessDenied()
        return user

    def require_database(self, database: object) -> None:
        if database != self._database:
            raise errors.unknown_database(database)

    def _pay_hashing_cost(self, secret: object) -> None:
        if self._pbkdf2_rounds > 0:
            material = secret.encode("utf-8") if isinstance(secret, str) else b""
            hashlib.pbkdf2_hmac("sha512", material, _COST_SALT, self._pbkdf2_rounds)


def _matches(user: UserSeed, secret: object) -> bool:
    """Compare in constant time against the password and every key."""
    if not isinstance(secret, str):
        return False
    candidate = secret.encode("utf-8")
    secrets = (user.password, *user.api_keys)
    return any(hmac.compare_digest(candidate, known.encode("utf-8")) for known in secrets)

"""Users and credentials, checked the way Odoo 18 checks them on its RPC routes.

``login`` and ``authenticate`` answer the uid, or ``False`` for a wrong login or secret; every
``execute``/``execute_kw`` checks (db, uid, password) again and raises ``AccessDenied`` when they
do not match. An API key is accepted wherever the password is, as Odoo does for keys of scope
``rpc``. A database name other than the seeded one fails as PostgreSQL makes Odoo fail.

JSON-2 (Odoo 19) takes an API key only, as ``Authorization: bearer <key>``: Odoo's
``_auth_method_bearer`` checks it with ``res.users.apikeys._check_credentials(scope='rpc')``, so a
password there is refused like any unknown key (``bearer_user``).

Logging in to a real Odoo hashes the secret with 600,000 pbkdf2 rounds (about a second); a
client that logs in per request is slow for that reason. ``pbkdf2_rounds`` reproduces that cost
on ``login``/``authenticate`` when asked to, and is 0 (free) by default so tests stay fast. When
it is on, a JSON-2 key check pays the 6,000 pbkdf2 rounds Odoo's ``KEY_CRYPT_CONTEXT`` uses for
API keys, on every request (there is no session).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from . import errors
from .seed import UserSeed

_COST_SALT = b"creativeflow-odoo-emulator"
API_KEY_PBKDF2_ROUNDS = 6000  # Odoo's KEY_CRYPT_CONTEXT for res.users.apikeys


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

    def bearer_user(self, key: str) -> UserSeed | None:
        """The owner of an API key (JSON-2's bearer token), or ``None``; passwords never match."""
        if self._pbkdf2_rounds > 0:
            hashlib.pbkdf2_hmac("sha512", key.encode("utf-8"), _COST_SALT, API_KEY_PBKDF2_ROUNDS)
        candidate = key.encode("utf-8")
        for user in self._by_uid.values():
            if any(hmac.compare_digest(candidate, k.encode("utf-8")) for k in user.api_keys):
                return user
        return None

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

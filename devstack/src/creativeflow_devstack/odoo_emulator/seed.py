"""The emulator's starting data: database name, users, tiers and accounts, read from JSON.

A seed is checked when it is loaded, with the same constraints the addon puts on its models
(unique codes, positive limits, non-negative prices and balances), so that a bad seed fails at
start with a clear message instead of as a strange refusal in the middle of a test.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from .rules import Tier

GROUP_ORCHESTRATOR = "orchestrator"
GROUP_AUDITOR = "auditor"
GROUP_MANAGER = "manager"
KNOWN_GROUPS = frozenset({GROUP_ORCHESTRATOR, GROUP_AUDITOR, GROUP_MANAGER})

_TIER_POSITIVE = ("max_width", "max_height", "max_samples_per_request", "max_requests_in_flight")
_TIER_NON_NEGATIVE = ("price_per_sample", "price_final_asset", "price_per_regeneration_sample")


class SeedError(ValueError):
    """The seed file does not describe a valid starting state."""


@dataclass(frozen=True, slots=True)
class UserSeed:
    """A ``res.users`` record: its password and every API key open the same doors."""

    uid: int
    login: str
    password: str
    name: str
    api_keys: tuple[str, ...] = ()
    groups: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class AccountSeed:
    platform_user_id: str
    tier: str
    balance: int


@dataclass(frozen=True, slots=True)
class Seed:
    database: str
    users: tuple[UserSeed, ...]
    tiers: tuple[Tier, ...]
    accounts: tuple[AccountSeed, ...] = ()
    login_pbkdf2_rounds: int = 0


def default_seed_path() -> Path:
    return Path(str(resources.files(__package__).joinpath("seed.json")))


def load_seed(path: str | Path | None = None) -> Seed:
    """Read a seed file, the package's ``seed.json`` when no path is given."""
    source = Path(path) if path is not None else default_seed_path()
    try:
        document = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise SeedError(f"cannot read seed {source}: {exc}") from exc
    return parse_seed(document)


def parse_seed(document: object) -> Seed:
    """Build and check a seed from its JSON document."""
    if not isinstance(document, dict):
        raise SeedError("a seed is a JSON object")
    database = _text(document, "database", "seed")
    rounds = document.get("login_pbkdf2_rounds", 0)
    if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 0:
        raise SeedError("login_pbkdf2_rounds must be an integer >= 0")
    users = tuple(_parse_user(raw) for raw in _list(document, "users"))
    tiers = tuple(_parse_tier(raw) for raw in _list(document, "tiers"))
    accounts = tuple(_parse_account(raw) for raw in _list(document, "accounts"))
    seed = Seed(
        database=database, users=users, tiers=tiers, accounts=accounts, login_pbkdf2_rounds=rounds
    )
    _check_unique(seed)
    return seed


def _check_unique(seed: Seed) -> None:
    _require_unique([u.login for u in seed.users], "user login")
    _require_unique([u.uid for u in seed.users], "user uid")
    _require_unique([t.code for t in seed.tiers], "tier code")
    _require_unique([a.platform_user_id for a in seed.accounts], "account platform_user_id")
    codes = {t.code for t in seed.tiers}
    for account in seed.accounts:
        if account.tier not in codes:
            raise SeedError(
                f"account {account.platform_user_id!r} has unknown tier {account.tier!r}"
            )


def _require_unique(values: list[Any], what: str) -> None:
    seen: set[Any] = set()
    for value in values:
        if value in seen:
            raise SeedError(f"duplicate {what}: {value!r}")
        seen.add(value)


def _parse_user(raw: object) -> UserSeed:
    entry = _object(raw, "user")
    groups = frozenset(_string_list(entry, "groups"))
    unknown = groups - KNOWN_GROUPS
    if unknown:
        raise SeedError(f"unknown groups {sorted(unknown)}; known: {sorted(KNOWN_GROUPS)}")
    return UserSeed(
        uid=_integer(entry, "uid", "user", minimum=1),
        login=_text(entry, "login", "user"),
        password=_text(entry, "password", "user"),
        name=str(entry.get("name") or entry["login"]),
        api_keys=tuple(_string_list(entry, "api_keys")),
        groups=groups,
    )


def _parse_tier(raw: object) -> Tier:
    entry = _object(raw, "tier")
    numbers = {name: _integer(entry, name, "tier", minimum=1) for name in _TIER_POSITIVE}
    numbers.update({name: _integer(entry, name, "tier", minimum=0) for name in _TIER_NON_NEGATIVE})
    return Tier(
        code=_text(entry, "code", "tier"),
        name=_text(entry, "name", "tier"),
        allowed_formats=_text(entry, "allowed_formats", "tier"),
        allow_advanced_models=_boolean(entry, "allow_advanced_models", "tier"),
        active=bool(entry.get("active", True)),
        **numbers,
    )


def _parse_account(raw: object) -> AccountSeed:
    entry = _object(raw, "account")
    return AccountSeed(
        platform_user_id=_text(entry, "platform_user_id", "account"),
        tier=_text(entry, "tier", "account"),
        balance=_integer(entry, "balance", "account", minimum=0),
    )


def _object(raw: object, what: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise SeedError(f"each {what} is a JSON object")
    return raw


def _list(document: dict[str, Any], key: str) -> list[Any]:
    value = document.get(key, [])
    if not isinstance(value, list):
        raise SeedError(f"{key} must be a list")
    return value


def _string_list(entry: dict[str, Any], key: str) -> list[str]:
    value = entry.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise SeedError(f"{key} must be a list of non-empty strings")
    return value


def _text(entry: dict[str, Any], key: str, what: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value:
        raise SeedError(f"{what}.{key} must be a non-empty string")
    return value


def _integer(entry: dict[str, Any], key: str, what: str, *, minimum: int) -> int:
    value = entry.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise SeedError(f"{what}.{key} must be an integer >= {minimum}")
    return value


def _boolean(entry: dict[str, Any], key: str, what: str) -> bool:
    value = entry.get(key, False)
    if not isinstance(value, bool):
        raise SeedError(f"{what}.{key} must be true or false")
    return value

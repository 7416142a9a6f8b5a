"""The emulator's starting data: database name, users, tiers and accounts, read from JSON.

A seed is checked when it is loaded, with the same constraints the addon puts on its models
(unique codes, positive limits, non-negative prices and balances, a tier's default model among
its allowed ones), so that a bad seed fails at start with a clear message instead of as a strange
refusal in the middle of a test.

``models`` is the catalogue (``creativeflow.ai.model``: code, name, active), in catalogue order;
a tier names its ``allowed_models`` and ``default_model`` by code, and grants the allowed models
that are active, in catalogue order, as the addon does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from creativeflow.domain import ai_models

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
class ModelSeed:
    """A ``creativeflow.ai.model`` record of the catalogue."""

    code: str
    name: str
    active: bool = True


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
    models: tuple[ModelSeed, ...] = ()


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
    models = tuple(_parse_model(raw) for raw in _list(document, "models"))
    _require_unique([m.code for m in models], "model code")
    tiers = tuple(_parse_tier(raw, models) for raw in _list(document, "tiers"))
    accounts = tuple(_parse_account(raw) for raw in _list(document, "accounts"))
    seed = Seed(
        database=database,
        users=users,
        tiers=tiers,
        accounts=accounts,
        login_pbkdf2_rounds=rounds,
        models=models,
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


def _parse_model(raw: object) -> ModelSeed:
    entry = _object(raw, "model")
    code = _text(entry, "code", "model")
    if not ai_models.is_model_code(code):
        raise SeedError(f"model code {code!r} is not [a-z0-9][a-z0-9._-]{{0,63}}")
    return ModelSeed(
        code=code,
        name=_text(entry, "name", "model"),
        active=_boolean(entry, "active", "model", default=True),
    )


def _parse_tier(raw: object, catalogue: tuple[ModelSeed, ...]) -> Tier:
    entry = _object(raw, "tier")
    code = _text(entry, "code", "tier")
    if "allow_advanced_models" in entry:
        raise SeedError(
            f"tier {code!r}: allow_advanced_models was replaced by allowed_models and "
            "default_model (codes of the seed's models)"
        )
    numbers = {name: _integer(entry, name, "tier", minimum=1) for name in _TIER_POSITIVE}
    numbers.update({name: _integer(entry, name, "tier", minimum=0) for name in _TIER_NON_NEGATIVE})
    models, default = tier_models(
        code,
        _string_list(entry, "allowed_models"),
        _text(entry, "default_model", "tier"),
        catalogue,
    )
    return Tier(
        code=code,
        name=_text(entry, "name", "tier"),
        allowed_formats=_text(entry, "allowed_formats", "tier"),
        active=bool(entry.get("active", True)),
        models=models,
        default_model=default,
        **numbers,
    )


def tier_models(
    tier: str, allowed: list[str], default: str, catalogue: tuple[ModelSeed, ...]
) -> tuple[tuple[str, ...], str | Literal[False]]:
    """What a tier grants, as the addon computes it: the allowed models that are active, in
    catalogue order, and its default when that is one of them."""
    known = {model.code for model in catalogue}
    unknown = sorted(set(allowed) - known)
    if unknown:
        raise SeedError(f"tier {tier!r} allows models the catalogue lacks: {unknown}")
    if default not in allowed:
        raise SeedError(f"tier {tier!r}: default_model {default!r} is not among allowed_models")
    granted = tuple(m.code for m in catalogue if m.active and m.code in allowed)
    return granted, default if default in granted else False


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


def _boolean(entry: dict[str, Any], key: str, what: str, *, default: bool = False) -> bool:
    value = entry.get(key, default)
    if not isinstance(value, bool):
        raise SeedError(f"{what}.{key} must be true or false")
    return value

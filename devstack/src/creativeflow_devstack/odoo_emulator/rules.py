"""The addon's business rules, as pure functions: argument checks, the tier check and pricing.

They follow ``odoo_contracts/README.md`` so that the emulator refuses exactly what the real addon
refuses, with the same codes, reasons and order. Where the README is silent (a blank id, the
case of a format, the largest ``ledger_window`` page, ``since`` after ``until``), they do what the
addon (``odoo_contracts/creativeflow_credits/models/credit_service.py``) does, so one contract
suite passes against both. Nothing here holds state or a lock; ``ledger.py`` applies these rules
under its lock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from creativeflow.domain import ai_models
from creativeflow.domain.actions import Action, InvalidAction

ACTION_SAMPLES = "samples"
ACTION_FINAL = "final"

TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
_TIMESTAMP_LENGTH = len("YYYY-MM-DD HH:MM:SS")
MAX_LEDGER_REQUEST_IDS = 500
MAX_WINDOW_LIMIT = 1000
MAX_HISTORY_LIMIT = 100
DEFAULT_HISTORY_LIMIT = 20

Absent = Literal[False]
"""What Odoo sends for an empty value: XML-RPC cannot carry ``None``."""


_SPEC_KEYS = ("format", "width", "height", "samples")
# record_generated_asset's struct: exactly these keys
ASSET_KEYS = (
    "request_id",
    "platform_user_id",
    "storage_key",
    "format",
    "width",
    "height",
    "checksum_sha256",
    "byte_size",
    "debit_actions",
)
MAX_ID_LENGTH = 255
MAX_STORAGE_KEY_LENGTH = 1024
MAX_DEBIT_ACTIONS = 100
MAX_INTEGER = 2_147_483_647  # Odoo's Integer is a PostgreSQL integer; XML-RPC's int is 32 bits
_FORMAT = re.compile(r"[a-z0-9]{1,16}")
_CHECKSUM = re.compile(r"[0-9a-f]{64}")
_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f-\x9f]")
IN_FLIGHT_KEY = "requests_in_flight"  # optional: the user's unfinished requests, for the cap
MODEL_KEY = "model"  # optional: the catalogue code asked for; absent or false: the tier's default
LEGACY_ADVANCED_KEY = "advanced_model"  # optional, from orchestrators older than the catalogue
LEGACY_ADVANCED_MODEL = ai_models.ADVANCED_MODEL  # what ``advanced_model: true`` asks for


class InvalidRequest(ValueError):
    """The arguments of a call break the contract: answered as the ``invalid_request`` refusal."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Tier:
    """A ``creativeflow.subscription.tier`` record, with the README's field names."""

    code: str
    name: str
    allowed_formats: str
    max_width: int
    max_height: int
    max_samples_per_request: int
    max_requests_in_flight: int
    price_per_sample: int
    price_final_asset: int
    price_per_regeneration_sample: int
    active: bool = True
    # the codes of the models the tier grants (allowed, active in the catalogue), in catalogue
    # order, and the one a request that names none runs on (False: none it can grant)
    models: tuple[str, ...] = ()
    default_model: str | Absent = False

    @property
    def allow_advanced_models(self) -> bool:
        """The addon's computed field, for orchestrators older than the catalogue."""
        return LEGACY_ADVANCED_MODEL in self.models

    @property
    def formats(self) -> tuple[str, ...]:
        """The comma-separated ``allowed_formats`` as a list, lower-cased, blanks dropped."""
        parts = self.allowed_formats.split(",")
        return tuple(part.strip().lower() for part in parts if part.strip())


@dataclass(frozen=True, slots=True)
class Spec:
    """The generation spec a debit is tier-checked and priced against."""

    format: str
    width: int
    height: int
    samples: int
    model: str | Absent = False  # the model asked for; False: the tier's default
    requests_in_flight: int | None = None  # None: the key was absent, the cap is not checked


@dataclass(frozen=True, slots=True)
class TierRefusal:
    """The first tier rule a spec breaks: the ``reason`` code, a ``detail`` text for admins and
    the extra ``figures`` the refusal carries (the cap on unfinished requests has two)."""

    reason: str
    detail: str
    figures: dict[str, int]


def is_integer(value: object) -> bool:
    """An int that is not a bool: ``True`` must not pass for a width of 1."""
    return isinstance(value, int) and not isinstance(value, bool)


def require_text(value: object, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(f"{name} must be a non-empty string")
    return value


def is_text(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


def is_final(action: str) -> bool:
    """``final`` and its later attempts ``final-<n>``: one asset, never checked for samples."""
    return Action.parse(action).is_final


def reason_text(value: object) -> str | Absent:
    """A refund's reason: a string (possibly empty, then stored as no reason)."""
    if not isinstance(value, str):
        raise InvalidRequest("reason must be a string")
    return value.strip() or False


def optional_text(value: object, name: str) -> str | Absent:
    """A Char argument that may be absent: ``False`` (or a JSON ``null``) means no value."""
    if value is False or value is None or value == "":
        return False
    if not isinstance(value, str):
        raise InvalidRequest(f"{name} must be a string or false")
    return value


def check_action(action: object) -> str:
    """The action grammar of ``domain/actions.py``, which the addon's copy must equal."""
    try:
        return str(Action.parse(action))  # type: ignore[arg-type]
    except InvalidAction as refused:
        raise InvalidRequest(str(refused)) from None


def parse_spec(spec: object) -> Spec:
    """Check every key of the spec, its type and its range."""
    if not isinstance(spec, dict):
        raise InvalidRequest("spec must be a struct with format, width, height, samples")
    missing = [key for key in _SPEC_KEYS if key not in spec]
    if missing:
        raise InvalidRequest("spec is missing " + ", ".join(missing))
    fmt = _spec_key(spec, "format", str)
    if not fmt.strip():
        raise InvalidRequest("spec.format must be a non-empty string")
    width = _spec_key(spec, "width", int)
    height = _spec_key(spec, "height", int)
    samples = _spec_key(spec, "samples", int)
    model = _requested_model(spec)
    if samples < 1:
        raise InvalidRequest("spec.samples must be at least 1")
    if width < 1 or height < 1:
        raise InvalidRequest("spec.width and spec.height must be at least 1")
    in_flight: int | None = None
    if IN_FLIGHT_KEY in spec:
        in_flight = spec[IN_FLIGHT_KEY]
        if not is_integer(in_flight) or in_flight < 0:
            raise InvalidRequest(f"spec.{IN_FLIGHT_KEY} must be an integer >= 0")
    return Spec(
        format=fmt,
        width=width,
        height=height,
        samples=samples,
        model=model,
        requests_in_flight=in_flight,
    )


def _requested_model(spec: dict[Any, Any]) -> str | Absent:
    """``model`` when given (a code or false), else what the older ``advanced_model`` asks."""
    model = spec.get(MODEL_KEY, False)
    if model is not False and not ai_models.is_model_code(model):  # the addon's syntax too
        raise InvalidRequest(
            f"spec.{MODEL_KEY} must be a model code (lower case letters, digits, '.', '_' and "
            "'-', at most 64 characters) or false"
        )
    legacy = spec.get(LEGACY_ADVANCED_KEY, False)
    if not isinstance(legacy, bool):
        raise InvalidRequest(f"spec.{LEGACY_ADVANCED_KEY} must be of type bool")
    if model:
        return str(model)
    return LEGACY_ADVANCED_MODEL if legacy else False


def _spec_key(spec: dict[Any, Any], key: str, kind: type[Any]) -> Any:
    value = spec[key]
    well_typed = is_integer(value) if kind is int else isinstance(value, kind)
    if not well_typed:
        raise InvalidRequest(f"spec.{key} must be of type {kind.__name__}")
    return value


def tier_refusal(tier: Tier, action: str, spec: Spec) -> TierRefusal | None:
    """The first tier rule the spec breaks, in the README's order."""
    if spec.format.strip().lower() not in tier.formats:
        allowed = ", ".join(tier.formats)
        return TierRefusal(
            "format_not_allowed", f"format {spec.format!r} is not among {allowed}", {}
        )
    if spec.width > tier.max_width or spec.height > tier.max_height:
        return TierRefusal(
            "resolution_not_allowed",
            f"{spec.width}x{spec.height} exceeds {tier.max_width}x{tier.max_height}",
            {},
        )
    if not is_final(action) and spec.samples > tier.max_samples_per_request:
        return TierRefusal(
            "too_many_samples",
            f"{spec.samples} samples exceed {tier.max_samples_per_request} per request",
            {},
        )
    return _model_refusal(tier, spec) or _in_flight_refusal(tier, action, spec)


def granted_model(tier: Tier, spec: Spec) -> str | Absent:
    """The model a debit of ``spec`` runs on: the one asked for, else the tier's default."""
    return spec.model or tier.default_model


def _model_refusal(tier: Tier, spec: Spec) -> TierRefusal | None:
    """A model the tier does not grant: off its list, archived or unknown to the catalogue."""
    model = granted_model(tier, spec)
    allowed = ", ".join(tier.models)
    if not model:
        return TierRefusal(
            "model_not_allowed",
            f"tier {tier.code!r} has no default model; ask for one of: {allowed}",
            {},
        )
    if model not in tier.models:
        return TierRefusal(
            "model_not_allowed",
            f"model {model!r} is not allowed on tier {tier.code!r} (allowed: {allowed})",
            {},
        )
    return None


def _in_flight_refusal(tier: Tier, action: str, spec: Spec) -> TierRefusal | None:
    """The last rule: a new request (``samples`` only) while the user already has the tier's
    maximum of unfinished ones. Checked only when the spec carries ``requests_in_flight``."""
    in_flight = spec.requests_in_flight
    if action != ACTION_SAMPLES or in_flight is None or in_flight < tier.max_requests_in_flight:
        return None
    return TierRefusal(
        "too_many_requests_in_flight",
        f"{in_flight} unfinished requests reach the cap of {tier.max_requests_in_flight}",
        {"requests_in_flight": in_flight, "max_requests_in_flight": tier.max_requests_in_flight},
    )


def price(tier: Tier, action: str, spec: Spec) -> int:
    if action == ACTION_SAMPLES:
        return tier.price_per_sample * spec.samples
    if is_final(action):
        return tier.price_final_asset
    return tier.price_per_regeneration_sample * spec.samples


@dataclass(frozen=True, slots=True)
class AssetRecord:
    """A ``creativeflow.generated.asset`` as ``record_generated_asset`` takes and keeps it."""

    request_id: str
    platform_user_id: str
    storage_key: str
    format: str
    width: int
    height: int
    checksum_sha256: str
    byte_size: int
    debit_actions: tuple[str, ...]

    def differences(self, other: AssetRecord) -> list[str]:
        """The keys whose values differ, in the contract's order (debits compared as sets)."""
        return [
            key
            for key in ASSET_KEYS
            if key != "request_id"
            and (
                set(self.debit_actions) != set(other.debit_actions)
                if key == "debit_actions"
                else getattr(self, key) != getattr(other, key)
            )
        ]


def _bounded_text(value: object, name: str, longest: int) -> str:
    text = require_text(value, name)
    if len(text) > longest:
        raise InvalidRequest(f"{name} must be at most {longest} characters")
    if _CONTROL_CHARACTER.search(text):
        raise InvalidRequest(f"{name} must not contain control characters")
    return text


def _debit_actions(actions: object) -> tuple[str, ...]:
    if not isinstance(actions, list) or not actions:
        raise InvalidRequest("asset.debit_actions must be a non-empty list of actions")
    if len(actions) > MAX_DEBIT_ACTIONS:
        raise InvalidRequest(f"asset.debit_actions holds at most {MAX_DEBIT_ACTIONS} actions")
    if not all(Action.is_valid(action) for action in actions):
        raise InvalidRequest(
            "asset.debit_actions: action must be samples, final, final-<n> (n >= 2) or "
            "regeneration-<n> (n >= 1)"
        )
    checked = tuple(str(action) for action in actions)
    if len(set(checked)) != len(checked):
        raise InvalidRequest("asset.debit_actions must not name an action twice")
    return checked


def parse_asset(asset: object) -> AssetRecord:
    """Check ``record_generated_asset``'s struct as the addon does: exactly ``ASSET_KEYS``,
    each of its type, length and form, in the same order of checks."""
    if not isinstance(asset, dict):
        raise InvalidRequest("asset must be a struct with " + ", ".join(ASSET_KEYS))
    missing = [key for key in ASSET_KEYS if key not in asset]
    if missing:
        raise InvalidRequest("asset is missing " + ", ".join(missing))
    unknown = sorted(str(key) for key in asset if key not in ASSET_KEYS)
    if unknown:
        raise InvalidRequest("asset has unknown keys " + ", ".join(unknown))
    request_id = _bounded_text(asset["request_id"], "asset.request_id", MAX_ID_LENGTH)
    user_id = _bounded_text(asset["platform_user_id"], "asset.platform_user_id", MAX_ID_LENGTH)
    storage_key = _bounded_text(asset["storage_key"], "asset.storage_key", MAX_STORAGE_KEY_LENGTH)
    fmt = asset["format"]
    if not isinstance(fmt, str) or not _FORMAT.fullmatch(fmt):
        raise InvalidRequest("asset.format must be 1 to 16 lower-case letters or digits")
    width, height, byte_size = (
        _asset_count(asset[key], key) for key in ("width", "height", "byte_size")
    )
    checksum = asset["checksum_sha256"]
    if not isinstance(checksum, str) or not _CHECKSUM.fullmatch(checksum):
        raise InvalidRequest("asset.checksum_sha256 must be 64 lower-case hexadecimal digits")
    return AssetRecord(
        request_id=request_id,
        platform_user_id=user_id,
        storage_key=storage_key,
        format=fmt,
        width=width,
        height=height,
        checksum_sha256=checksum,
        byte_size=byte_size,
        debit_actions=_debit_actions(asset["debit_actions"]),
    )


def _asset_count(value: object, key: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_INTEGER:
        raise InvalidRequest(f"asset.{key} must be an integer from 1 to {MAX_INTEGER}")
    return value


def check_request_ids(request_ids: object) -> list[str]:
    if not isinstance(request_ids, list) or not all(isinstance(r, str) for r in request_ids):
        raise InvalidRequest("request_ids must be a list of strings")
    if len(request_ids) > MAX_LEDGER_REQUEST_IDS:
        raise InvalidRequest(f"at most {MAX_LEDGER_REQUEST_IDS} request ids per call")
    return list(request_ids)


def parse_timestamp(value: object, name: str) -> datetime:
    """A UTC ``"YYYY-MM-DD HH:MM:SS"`` string, Odoo's Datetime format on the wire."""
    if not isinstance(value, str) or len(value) != _TIMESTAMP_LENGTH:
        raise InvalidRequest(f"{name} must be a 'YYYY-MM-DD HH:MM:SS' string")
    try:
        return datetime.strptime(value, TIMESTAMP_FORMAT)
    except ValueError:
        raise InvalidRequest(f"{name} must be a 'YYYY-MM-DD HH:MM:SS' string") from None


def check_window_page(limit: object, offset: object) -> tuple[int, int]:
    return check_page(limit, offset, MAX_WINDOW_LIMIT)


def check_page(limit: object, offset: object, largest: int) -> tuple[int, int]:
    """A page of ``limit`` entries (1 to ``largest``) after ``offset`` of them."""
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= largest:
        raise InvalidRequest(f"limit must be an integer from 1 to {largest}")
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise InvalidRequest("offset must be an integer >= 0")
    return limit, offset


def quote(tier: Tier, spec: Spec, balance: int) -> dict[str, Any]:
    """What ``quote`` answers besides ``ok``, ``code`` and ``user_id``: the tier check of a new
    request (``samples``), the three prices and whether the balance covers the first."""
    refusal = tier_refusal(tier, ACTION_SAMPLES, spec)
    prices = {
        "samples": price(tier, ACTION_SAMPLES, spec),
        "final": price(tier, ACTION_FINAL, spec),
        "regeneration": price(tier, "regeneration-1", spec),
    }
    model = granted_model(tier, spec)
    return {
        "tier": tier.code,
        "allowed": refusal is None,
        "reason": refusal.reason if refusal else False,
        "detail": refusal.detail if refusal else False,
        **(refusal.figures if refusal else {}),
        "model": model if model in tier.models else False,
        "models": list(tier.models),
        "default_model": tier.default_model,
        "prices": prices,
        "balance": balance,
        "affordable": balance >= prices["samples"],
    }


def format_timestamp(moment: datetime) -> str:
    return moment.strftime(TIMESTAMP_FORMAT)

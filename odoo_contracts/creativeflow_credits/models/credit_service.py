# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0.html)
"""The public RPC methods of the credit contract (odoo_contracts/README.md).

Business refusals are results with ``ok: false`` and a stable ``code``; exceptions are kept for
access and technical faults. Results never hold ``None``: XML-RPC cannot carry it.

The read methods are deliberately not ``@api.readonly``: a read-only cursor may be served by a
replica, and the orchestrator settles unknown debit outcomes with ``ledger_by_requests``, which
must see what the primary has committed. ``quote`` runs the tier check and the prices of
``debit`` without writing or locking anything, so its answer is advice: the debit that follows
checks again under the account's row lock.

The model a job runs on is Odoo's to grant: a spec may name one (``model``, a code of the
catalogue ``creativeflow.ai.model``), none for the tier's default; the tier check refuses a model
the tier does not list (``model_not_allowed``), and the debit's ledger entry records the model
it granted. ``advanced_model: true``, from an orchestrator older than the catalogue, asks for
``creativeflow-advanced-v1``.
"""

import re
from datetime import datetime

from psycopg2 import errors as pg_errors

from odoo import api, fields, models
from odoo.exceptions import AccessError

ORCHESTRATOR_GROUP = "creativeflow_credits.group_orchestrator"

# The codes of creativeflow.ai.model (its constraint) and of spec.model: the orchestrator's own
# check (creativeflow.domain.ai_models) is this pattern, character for character.
MODEL_CODE_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
# What ``advanced_model: true`` asks for, from an orchestrator older than the model catalogue.
LEGACY_ADVANCED_MODEL = "creativeflow-advanced-v1"

ACTION_PATTERN = re.compile(r"samples|final|final-(?:[2-9]|[1-9][0-9]+)|regeneration-[1-9][0-9]*")
SPEC_KEYS = ("format", "width", "height", "samples")
SPEC_COUNTS = ("width", "height", "samples")
# Optional: the user's unfinished requests (not counting this one), for the tier's cap on them.
IN_FLIGHT_KEY = "requests_in_flight"
# Optional: the model asked for (a catalogue code; absent or false: the tier's default).
MODEL_KEY = "model"
# Optional, from orchestrators older than the catalogue: true asks for LEGACY_ADVANCED_MODEL.
LEGACY_ADVANCED_KEY = "advanced_model"
MAX_REQUEST_IDS = 500
MAX_WINDOW_LIMIT = 1000
MAX_HISTORY_LIMIT = 100
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
UNIQUE_MOVEMENT_CONSTRAINT = "creativeflow_credit_ledger_request_action_operation_unique"
UNIQUE_ASSET_CONSTRAINT = "creativeflow_generated_asset_request_id_unique"
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
ASSET_COUNTS = ("width", "height", "byte_size")
MAX_ID_LENGTH = 255
MAX_STORAGE_KEY_LENGTH = 1024
MAX_DEBIT_ACTIONS = 100
MAX_INTEGER = 2147483647  # Odoo's Integer is a PostgreSQL integer; XML-RPC's int is 32 bits
FORMAT_PATTERN = re.compile(r"[a-z0-9]{1,16}")
CHECKSUM_PATTERN = re.compile(r"[0-9a-f]{64}")
CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def refusal(code, **details):
    return {"ok": False, "code": code, **details}


def invalid_request(detail):
    return refusal("invalid_request", detail=detail)


def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def is_text(value):
    return isinstance(value, str) and bool(value.strip())


def is_final(action):
    return action == "final" or action.startswith("final-")


def action_error(action):
    if isinstance(action, str) and ACTION_PATTERN.fullmatch(action):
        return None
    return "action must be samples, final, final-<n> (n >= 2) or regeneration-<n> (n >= 1)"


def spec_error(spec):
    if not isinstance(spec, dict):
        return "spec must be a struct with " + ", ".join(SPEC_KEYS)
    missing = [key for key in SPEC_KEYS if key not in spec]
    if missing:
        return "spec is missing " + ", ".join(missing)
    if not is_text(spec["format"]):
        return "spec.format must be a non-empty string"
    for key in SPEC_COUNTS:
        if not is_int(spec[key]):
            return f"spec.{key} must be an integer"
        if spec[key] < 1:
            return f"spec.{key} must be at least 1"
    model = spec.get(MODEL_KEY, False)
    if model is not False and not (isinstance(model, str) and MODEL_CODE_PATTERN.fullmatch(model)):
        return (
            f"spec.{MODEL_KEY} must be a model code (lower case letters, digits, '.', '_' and "
            "'-', at most 64 characters) or false"
        )
    if LEGACY_ADVANCED_KEY in spec and not isinstance(spec[LEGACY_ADVANCED_KEY], bool):
        return f"spec.{LEGACY_ADVANCED_KEY} must be a boolean"
    if IN_FLIGHT_KEY in spec and (not is_int(spec[IN_FLIGHT_KEY]) or spec[IN_FLIGHT_KEY] < 0):
        return f"spec.{IN_FLIGHT_KEY} must be an integer >= 0"
    return None


def optional_text_error(value, name):
    if value is None or value is False or isinstance(value, str):
        return None
    return f"{name} must be a string or false"


def user_id_error(platform_user_id):
    if is_text(platform_user_id):
        return None
    return "platform_user_id must be a non-empty string"


def debit_arguments_error(platform_user_id, request_id, action, spec, correlation_id):
    detail = user_id_error(platform_user_id)
    if detail:
        return detail
    if not is_text(request_id):
        return "request_id must be a non-empty string"
    return (
        action_error(action)
        or spec_error(spec)
        or optional_text_error(correlation_id, "correlation_id")
    )


def quote_arguments_error(platform_user_id, spec):
    """The checks ``debit`` makes of the same two arguments, with the same details."""
    return user_id_error(platform_user_id) or spec_error(spec)


def page_error(limit, offset, largest):
    if not is_int(limit) or not 1 <= limit <= largest:
        return f"limit must be an integer from 1 to {largest}"
    if not is_int(offset) or offset < 0:
        return "offset must be an integer >= 0"
    return None


def refund_arguments_error(request_id, action, reason, correlation_id):
    if not is_text(request_id):
        return "request_id must be a non-empty string"
    if not isinstance(reason, str):
        return "reason must be a string"
    return action_error(action) or optional_text_error(correlation_id, "correlation_id")


def bounded_text_error(value, name, longest):
    if not is_text(value):
        return f"{name} must be a non-empty string"
    if len(value) > longest:
        return f"{name} must be at most {longest} characters"
    if CONTROL_CHARACTER.search(value):
        return f"{name} must not contain control characters"
    return None


def debit_actions_error(actions):
    if not isinstance(actions, (list, tuple)) or not actions:
        return "asset.debit_actions must be a non-empty list of actions"
    if len(actions) > MAX_DEBIT_ACTIONS:
        return f"asset.debit_actions holds at most {MAX_DEBIT_ACTIONS} actions"
    for action in actions:
        detail = action_error(action)
        if detail:
            return "asset.debit_actions: " + detail
    if len(set(actions)) != len(actions):
        return "asset.debit_actions must not name an action twice"
    return None


def asset_error(asset):
    """What is wrong with ``record_generated_asset``'s struct, or None: exactly the keys of
    ``ASSET_KEYS``, each of its type, length and form."""
    if not isinstance(asset, dict):
        return "asset must be a struct with " + ", ".join(ASSET_KEYS)
    missing = [key for key in ASSET_KEYS if key not in asset]
    if missing:
        return "asset is missing " + ", ".join(missing)
    unknown = sorted(str(key) for key in asset if key not in ASSET_KEYS)
    if unknown:
        return "asset has unknown keys " + ", ".join(unknown)
    for key, longest in (
        ("request_id", MAX_ID_LENGTH),
        ("platform_user_id", MAX_ID_LENGTH),
        ("storage_key", MAX_STORAGE_KEY_LENGTH),
    ):
        detail = bounded_text_error(asset[key], f"asset.{key}", longest)
        if detail:
            return detail
    if not isinstance(asset["format"], str) or not FORMAT_PATTERN.fullmatch(asset["format"]):
        return "asset.format must be 1 to 16 lower-case letters or digits"
    for key in ASSET_COUNTS:
        if not is_int(asset[key]) or not 1 <= asset[key] <= MAX_INTEGER:
            return f"asset.{key} must be an integer from 1 to {MAX_INTEGER}"
    checksum = asset["checksum_sha256"]
    if not isinstance(checksum, str) or not CHECKSUM_PATTERN.fullmatch(checksum):
        return "asset.checksum_sha256 must be 64 lower-case hexadecimal digits"
    return debit_actions_error(asset["debit_actions"])


def asset_values(asset):
    """What ``record_generated_asset`` answers about a recorded asset."""
    debits = asset.ledger_entry_ids.sorted("id")
    return {
        "ok": True,
        "code": "recorded",
        "asset_id": asset.id,
        "request_id": asset.request_id,
        "user_id": asset.platform_user_id,
        "storage_key": asset.storage_key,
        "format": asset.format,
        "width": asset.width,
        "height": asset.height,
        "checksum_sha256": asset.checksum,
        "byte_size": asset.byte_size,
        "debit_actions": sorted(debits.mapped("action")),
        "ledger_entry_ids": debits.ids,
        "recorded_at": fields.Datetime.to_string(asset.create_date),
    }


def asset_differences(recorded, asset):
    """The keys of ``asset`` whose values differ from the recorded asset's, in ``ASSET_KEYS``
    order (``debit_actions`` compared as sets)."""
    known = asset_values(recorded)
    known["platform_user_id"] = known["user_id"]
    return [
        key
        for key in ASSET_KEYS
        if key != "request_id"
        and (
            set(known[key]) != set(asset[key])
            if key == "debit_actions"
            else known[key] != asset[key]
        )
    ]


def parse_timestamp(value):
    """A naive UTC datetime from 'YYYY-MM-DD HH:MM:SS', or None when it is not one."""
    if not isinstance(value, str) or len(value) != len("YYYY-MM-DD HH:MM:SS"):
        return None
    try:
        return datetime.strptime(value, TIMESTAMP_FORMAT)
    except ValueError:
        return None


def tier_refusal(tier, action, spec):
    """The first tier rule the spec breaks, as (reason, detail, extra figures), or None."""
    if spec["format"].strip().lower() not in tier._format_list():
        return (
            "format_not_allowed",
            f"format {spec['format']} is not allowed (allowed: {tier.allowed_formats})",
            {},
        )
    if spec["width"] > tier.max_width or spec["height"] > tier.max_height:
        return (
            "resolution_not_allowed",
            f"{spec['width']}x{spec['height']} exceeds {tier.max_width}x{tier.max_height}",
            {},
        )
    if not is_final(action) and spec["samples"] > tier.max_samples_per_request:
        return (
            "too_many_samples",
            f"{spec['samples']} samples exceed {tier.max_samples_per_request} per request",
            {},
        )
    return model_refusal(tier, spec) or in_flight_refusal(tier, action, spec)


def requested_model(spec):
    """The model code the spec asks for, or False for the tier's default."""
    if spec.get(MODEL_KEY):
        return spec[MODEL_KEY]
    return LEGACY_ADVANCED_MODEL if spec.get(LEGACY_ADVANCED_KEY) is True else False


def granted_model(tier, spec):
    """The code of the model a debit of this spec runs on: the one asked for, else the tier's
    default (False when the tier has no default it can grant)."""
    return requested_model(spec) or tier._default_model_code()


def model_refusal(tier, spec):
    """A model the tier does not grant: off its list, archived, or unknown to the catalogue."""
    model = granted_model(tier, spec)
    allowed = tier._model_codes()
    if not model:
        detail = f"tier {tier.code} has no default model; ask for one of: {', '.join(allowed)}"
        return "model_not_allowed", detail, {}
    if model not in allowed:
        detail = f"model {model} is not allowed on tier {tier.code} (allowed: {', '.join(allowed)})"
        return "model_not_allowed", detail, {}
    return None


def in_flight_refusal(tier, action, spec):
    """The last tier rule: a new request (``samples``) while the user already has the tier's
    maximum of unfinished ones. Checked only when the spec carries ``requests_in_flight``."""
    in_flight = spec.get(IN_FLIGHT_KEY)
    if action != "samples" or in_flight is None or in_flight < tier.max_requests_in_flight:
        return None
    return (
        "too_many_requests_in_flight",
        f"{in_flight} unfinished requests reach the cap of {tier.max_requests_in_flight}",
        {IN_FLIGHT_KEY: in_flight, "max_requests_in_flight": tier.max_requests_in_flight},
    )


def price(tier, action, samples):
    if action == "samples":
        return tier.price_per_sample * samples
    if is_final(action):
        return tier.price_final_asset
    return tier.price_per_regeneration_sample * samples


def movement_result(code, entry, replay):
    """The result of a debit or refund; ``model`` is the model the debit granted."""
    return {
        "ok": True,
        "code": code,
        "replay": replay,
        "entry_id": entry.id,
        "user_id": entry.platform_user_id,
        "request_id": entry.request_id,
        "action": entry.action,
        "amount": entry.amount,
        "balance_after": entry.balance_after,
        "model": entry.model_id.code or False,
    }


def entry_values(entry):
    return {
        "id": entry.id,
        "user_id": entry.platform_user_id or False,
        "request_id": entry.request_id or False,
        "action": entry.action or False,
        "operation": entry.operation,
        "amount": entry.amount,
        "balance_after": entry.balance_after,
        "reason": entry.reason or False,
        "correlation_id": entry.correlation_id or False,
        "model": entry.model_id.code or False,
        "created_at": fields.Datetime.to_string(entry.create_date),
    }


class CreditService(models.AbstractModel):
    _name = "creativeflow.credit.service"
    _description = "CreativeFlow credit service (public RPC methods)"

    @api.model
    def get_entitlements(self, platform_user_id):
        self._check_orchestrator()
        detail = user_id_error(platform_user_id)
        if detail:
            return invalid_request(detail)
        account = self._find_account(platform_user_id)
        if not account:
            return refusal("unknown_account")
        tier = account.tier_id
        return {
            "ok": True,
            "code": "ok",
            "user_id": account.platform_user_id,
            "tier": {"code": tier.code, "name": tier.name},
            "limits": {
                "formats": tier._format_list(),
                "max_width": tier.max_width,
                "max_height": tier.max_height,
                "max_samples_per_request": tier.max_samples_per_request,
                "models": tier._model_codes(),
                "default_model": tier._default_model_code(),
                # for orchestrators older than the catalogue
                "advanced_models": tier.allow_advanced_models,
                "max_requests_in_flight": tier.max_requests_in_flight,
            },
            "prices": {
                "sample": tier.price_per_sample,
                "final": tier.price_final_asset,
                "regeneration_sample": tier.price_per_regeneration_sample,
            },
            "balance": account.balance,
        }

    @api.model
    def debit(self, platform_user_id, request_id, action, spec, correlation_id=False):
        self._check_orchestrator()
        detail = debit_arguments_error(platform_user_id, request_id, action, spec, correlation_id)
        if detail:
            return invalid_request(detail)
        account = self._find_account(platform_user_id)
        if not account:
            return refusal("unknown_account")
        account._lock_for_update()
        previous = self._find_entry(request_id, action, "debit")
        if previous:
            if previous.account_id != account:
                return self._request_conflict(request_id, action)
            return movement_result("debited", previous, replay=True)
        tier = account.tier_id
        forbidden = tier_refusal(tier, action, spec)
        if forbidden:
            reason, detail, figures = forbidden
            return refusal("tier_forbids", reason=reason, tier=tier.code, detail=detail, **figures)
        amount = price(tier, action, spec["samples"])
        if amount > account.balance:
            return refusal("insufficient_credits", required=amount, balance=account.balance)
        code = granted_model(tier, spec)  # once: not again for each allowed model
        model = tier._every_allowed_model().filtered(lambda record: record.code == code)
        try:
            with self.env.cr.savepoint():
                entry = account._post_ledger_entry(
                    "debit",
                    amount,
                    request_id=request_id,
                    action=action,
                    correlation_id=correlation_id,
                    model=model,
                )
        except pg_errors.UniqueViolation as error:
            # Same-account duplicates are serialized by the row lock; a unique violation here
            # means another account's debit of this request and action committed meanwhile.
            if error.diag.constraint_name != UNIQUE_MOVEMENT_CONSTRAINT:
                raise
            return self._request_conflict(request_id, action)
        return movement_result("debited", entry, replay=False)

    @api.model
    def refund(self, request_id, action, reason, correlation_id=False):
        self._check_orchestrator()
        detail = refund_arguments_error(request_id, action, reason, correlation_id)
        if detail:
            return invalid_request(detail)
        debit = self._find_entry(request_id, action, "debit")
        if not debit:
            return refusal("nothing_to_refund")
        account = debit.account_id
        account._lock_for_update()
        previous = self._find_entry(request_id, action, "refund")
        if previous:
            return movement_result("refunded", previous, replay=True)
        entry = account._post_ledger_entry(
            "refund",
            debit.amount,
            request_id=request_id,
            action=action,
            reason=reason.strip(),
            correlation_id=correlation_id,
            model=debit.model_id,
        )
        return movement_result("refunded", entry, replay=False)

    @api.model
    def ledger_by_requests(self, request_ids):
        self._check_orchestrator()
        if not isinstance(request_ids, (list, tuple)) or not all(
            isinstance(request_id, str) for request_id in request_ids
        ):
            return invalid_request("request_ids must be a list of strings")
        if len(request_ids) > MAX_REQUEST_IDS:
            return invalid_request(f"at most {MAX_REQUEST_IDS} request ids per call")
        wanted = sorted({request_id for request_id in request_ids if request_id})
        entries = self.env["creativeflow.credit.ledger"].sudo()
        if wanted:
            entries = entries.search([("request_id", "in", wanted)], order="id")
        return {"ok": True, "code": "ok", "entries": [entry_values(entry) for entry in entries]}

    @api.model
    def ledger_window(self, since, until, limit=MAX_WINDOW_LIMIT, offset=0):
        self._check_orchestrator()
        start, end = parse_timestamp(since), parse_timestamp(until)
        if start is None or end is None:
            return invalid_request("since and until must be 'YYYY-MM-DD HH:MM:SS' (UTC)")
        if start > end:
            return invalid_request("since must not be after until")
        detail = page_error(limit, offset, MAX_WINDOW_LIMIT)
        if detail:
            return invalid_request(detail)
        found = (
            self.env["creativeflow.credit.ledger"]
            .sudo()
            .search(
                [
                    ("create_date", ">=", fields.Datetime.to_string(start)),
                    ("create_date", "<", fields.Datetime.to_string(end)),
                ],
                order="id",
                limit=limit + 1,
                offset=offset,
            )
        )
        return {
            "ok": True,
            "code": "ok",
            "entries": [entry_values(entry) for entry in found[:limit]],
            "has_more": len(found) > limit,
        }

    @api.model
    def quote(self, platform_user_id, spec):
        self._check_orchestrator()
        detail = quote_arguments_error(platform_user_id, spec)
        if detail:
            return invalid_request(detail)
        account = self._find_account(platform_user_id)
        if not account:
            return refusal("unknown_account")
        tier = account.tier_id
        # A new request is debited as "samples": the tier check of that action, cap included.
        reason, tier_detail, figures = tier_refusal(tier, "samples", spec) or (False, False, {})
        samples = spec["samples"]
        prices = {
            "samples": price(tier, "samples", samples),
            "final": price(tier, "final", samples),
            "regeneration": price(tier, "regeneration-1", samples),
        }
        balance = account.balance
        model = granted_model(tier, spec)
        return {
            "ok": True,
            "code": "quoted",
            "user_id": account.platform_user_id,
            "tier": tier.code,
            "allowed": not reason,
            "reason": reason,
            "detail": tier_detail,
            **figures,
            "model": model if model in tier._model_codes() else False,
            "models": tier._model_codes(),
            "default_model": tier._default_model_code(),
            "prices": prices,
            "balance": balance,
            "affordable": balance >= prices["samples"],
        }

    @api.model
    def ledger_for_user(self, platform_user_id, limit=20, offset=0):
        self._check_orchestrator()
        detail = user_id_error(platform_user_id) or page_error(limit, offset, MAX_HISTORY_LIMIT)
        if detail:
            return invalid_request(detail)
        account = self._find_account(platform_user_id)
        if not account:
            return refusal("unknown_account")
        found = (
            self.env["creativeflow.credit.ledger"]
            .sudo()
            .search(
                [("account_id", "=", account.id)],
                order="id desc",
                limit=limit + 1,
                offset=offset,
            )
        )
        return {
            "ok": True,
            "code": "ok",
            "entries": [entry_values(entry) for entry in found[:limit]],
            "has_more": len(found) > limit,
        }

    @api.model
    def record_generated_asset(self, asset):
        self._check_orchestrator()
        detail = asset_error(asset)
        if detail:
            return invalid_request(detail)
        account = self._find_account(asset["platform_user_id"])
        if not account:
            return refusal("unknown_account")
        # Serializes the recordings of one account, and makes a concurrent one of the same
        # request fail to serialize (retried by Odoo, it then finds this asset and replays).
        account._lock_for_update()
        account._touch_locked_row()
        Asset = self.env["creativeflow.generated.asset"].sudo()
        request_id = asset["request_id"]
        recorded = Asset.search([("request_id", "=", request_id)], limit=1)
        if recorded:
            return self._replay_or_conflict(recorded, asset)
        debits, refused = self._paying_debits(account, request_id, asset["debit_actions"])
        if refused:
            return refused
        try:
            with self.env.cr.savepoint():
                created = Asset.create(
                    {
                        "account_id": account.id,
                        "request_id": request_id,
                        "ledger_entry_ids": [(6, 0, debits.ids)],
                        "storage_key": asset["storage_key"],
                        "format": asset["format"],
                        "width": asset["width"],
                        "height": asset["height"],
                        "checksum": asset["checksum_sha256"],
                        "byte_size": asset["byte_size"],
                    }
                )
        except pg_errors.UniqueViolation as error:
            # Same-account recordings are serialized by the row lock: another account's asset
            # of this request committed meanwhile.
            if error.diag.constraint_name != UNIQUE_ASSET_CONSTRAINT:
                raise
            return self._asset_conflict(request_id, ["platform_user_id"])
        return {**asset_values(created), "created": True}

    def _replay_or_conflict(self, recorded, asset):
        differences = asset_differences(recorded, asset)
        if differences:
            return self._asset_conflict(asset["request_id"], differences)
        return {**asset_values(recorded), "created": False}

    def _asset_conflict(self, request_id, differences):
        return refusal(
            "asset_conflict",
            detail=f"request {request_id} already has an asset with other "
            + ", ".join(differences),
            differences=differences,
        )

    def _paying_debits(self, account, request_id, actions):
        """The request's debits of ``actions``, and a refusal when one is missing or was
        debited to another account."""
        debits = (
            self.env["creativeflow.credit.ledger"]
            .sudo()
            .search(
                [
                    ("request_id", "=", request_id),
                    ("action", "in", list(actions)),
                    ("operation", "=", "debit"),
                ],
                order="id",
            )
        )
        missing = sorted(set(actions) - set(debits.mapped("action")))
        if missing:
            return debits, refusal(
                "unknown_debit",
                detail=f"request {request_id} has no debit of " + ", ".join(missing),
                actions=missing,
            )
        if debits.account_id != account:
            return debits, refusal(
                "request_conflict",
                detail=f"request {request_id} was debited to another account",
            )
        return debits, None

    def _check_orchestrator(self):
        if not self.env.user.has_group(ORCHESTRATOR_GROUP):
            raise AccessError(
                self.env._(
                    "Only members of CreativeFlow / Orchestrator may call the credit service."
                )
            )

    def _find_account(self, platform_user_id):
        return (
            self.env["creativeflow.credit.account"]
            .sudo()
            .search([("platform_user_id", "=", platform_user_id)], limit=1)
        )

    def _find_entry(self, request_id, action, operation):
        return (
            self.env["creativeflow.credit.ledger"]
            .sudo()
            .search(
                [
                    ("request_id", "=", request_id),
                    ("action", "=", action),
                    ("operation", "=", operation),
                ],
                order="id",
                limit=1,
            )
        )

    def _request_conflict(self, request_id, action):
        return refusal(
            "request_conflict",
            detail=f"request {request_id} action {action} was debited to another account",
        )

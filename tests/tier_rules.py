"""The addon's table of tier checks and prices (``odoo_contracts/creativeflow_credits/tests/
tier_rules.json``), read for the product's tests: the addon's TransactionCase runs it on Odoo,
these run it on the emulator over the wire and on ``FakeCredits``, so the three cannot drift."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from creativeflow.domain.credits import GenerationSpec
from creativeflow_devstack.odoo_emulator.rules import Tier
from creativeflow_devstack.odoo_emulator.seed import load_seed, tier_models

TABLE_PATH = Path(__file__).parents[1] / "odoo_contracts/creativeflow_credits/tests/tier_rules.json"
TABLE: dict[str, Any] = json.loads(TABLE_PATH.read_text(encoding="utf-8"))


@dataclass(frozen=True, slots=True)
class RuleCase:
    name: str
    action: str
    spec: GenerationSpec
    amount: int | None  # debited for this much, or
    reason: str | None  # refused with tier_forbids and this reason
    model: str | None = None  # when debited: the model granted, if the case names it

    @classmethod
    def parse(cls, case: dict[str, Any]) -> RuleCase:
        fields = {**TABLE["spec"], **case["spec"]}
        spec = GenerationSpec(
            format=fields["format"],
            width=fields["width"],
            height=fields["height"],
            samples=fields["samples"],
            model=_asked_model(fields),
            requests_in_flight=fields.get("requests_in_flight"),
        )
        return cls(
            case["name"],
            case["action"],
            spec,
            case.get("amount"),
            case.get("reason"),
            case.get("model"),
        )


def _asked_model(fields: dict[str, Any]) -> str | None:
    """The product sends ``model`` only; the older ``advanced_model: true`` asks for the
    advanced model (the addon and the emulator read the raw flag the same way)."""
    if fields.get("model"):
        return str(fields["model"])
    return "creativeflow-advanced-v1" if fields.get("advanced_model") is True else None


def _table_tier(values: dict[str, Any]) -> Tier:
    """The table's tier as the emulator holds it: its models (given by code, as the addon's
    fields ``allowed_model_ids`` and ``default_model_id``) resolved against the seed's
    catalogue, which is the addon's shipped one."""
    fields = dict(values)
    allowed, default = fields.pop("allowed_model_ids"), fields.pop("default_model_id")
    models, granted_default = tier_models(fields["code"], allowed, default, load_seed().models)
    return Tier(**fields, models=models, default_model=granted_default)


TIER = _table_tier(TABLE["tier"])
CASES = [RuleCase.parse(case) for case in TABLE["cases"]]

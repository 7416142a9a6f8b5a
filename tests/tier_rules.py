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

TABLE_PATH = Path(__file__).parents[1] / "odoo_contracts/creativeflow_credits/tests/tier_rules.json"
TABLE: dict[str, Any] = json.loads(TABLE_PATH.read_text(encoding="utf-8"))


@dataclass(frozen=True, slots=True)
class RuleCase:
    name: str
    action: str
    spec: GenerationSpec
    amount: int | None  # debited for this much, or
    reason: str | None  # refused with tier_forbids and this reason

    @classmethod
    def parse(cls, case: dict[str, Any]) -> RuleCase:
        fields = {**TABLE["spec"], **case["spec"]}
        spec = GenerationSpec(
            format=fields["format"],
            width=fields["width"],
            height=fields["height"],
            samples=fields["samples"],
            advanced_model=fields["advanced_model"],
            requests_in_flight=fields.get("requests_in_flight"),
        )
        return cls(case["name"], case["action"], spec, case.get("amount"), case.get("reason"))


TIER = Tier(**TABLE["tier"])
CASES = [RuleCase.parse(case) for case in TABLE["cases"]]

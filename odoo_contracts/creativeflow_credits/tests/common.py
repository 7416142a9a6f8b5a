# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0.html)
import json
from pathlib import Path

from odoo.tests import TransactionCase
from odoo.tests.common import new_test_user

# The tier check and the prices as one table, which the product's tests run against the Odoo
# emulator and its in-memory twin too: the tier below and the default spec come from it.
TIER_RULES = json.loads((Path(__file__).parent / "tier_rules.json").read_text(encoding="utf-8"))


class CreditsCase(TransactionCase):
    """Users of each group, one tier with known limits and prices, accounts with known balances.

    Codes and platform user ids start with ``cf-test-`` so that they never meet the demo data.
    """

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # as shipped: the Orchestrator group alone (no Internal User) and no password
        cls.orchestrator = cls.env["res.users"].create(
            {
                "name": "CF test orchestrator",
                "login": "cf_test_orchestrator",
                "groups_id": [(6, 0, [cls.env.ref("creativeflow_credits.group_orchestrator").id])],
            }
        )
        cls.auditor = new_test_user(
            cls.env, login="cf_test_auditor", groups="creativeflow_credits.group_auditor"
        )
        cls.manager = new_test_user(
            cls.env, login="cf_test_manager", groups="creativeflow_credits.group_manager"
        )
        cls.AiModel = cls.env["creativeflow.ai.model"]
        cls.standard_model = cls.env.ref("creativeflow_credits.ai_model_standard_v1")
        cls.draft_model = cls.env.ref("creativeflow_credits.ai_model_draft_v1")
        cls.advanced_model = cls.env.ref("creativeflow_credits.ai_model_advanced_v1")
        cls.tier = cls.env["creativeflow.subscription.tier"].create(
            cls.tier_values(TIER_RULES["tier"])
        )
        cls.account = cls.open_account("cf-test-user-1", 500)
        cls.other_account = cls.open_account("cf-test-user-2", 500)
        cls.poor_account = cls.open_account("cf-test-user-poor", 5)
        cls.Ledger = cls.env["creativeflow.credit.ledger"]
        cls.service = cls.env["creativeflow.credit.service"].with_user(cls.orchestrator)

    @classmethod
    def tier_values(cls, table_tier):
        """The rule table's tier as ``create`` takes it: its models are given by their codes."""
        values = dict(table_tier)
        codes = values.pop("allowed_model_ids")
        allowed = cls.env["creativeflow.ai.model"].search([("code", "in", codes)])
        values["allowed_model_ids"] = [(6, 0, allowed.ids)]
        values["default_model_id"] = allowed.filtered(
            lambda model: model.code == values["default_model_id"]
        ).id
        return values

    @classmethod
    def open_account(cls, platform_user_id, credits):
        account = cls.env["creativeflow.credit.account"].create(
            {"platform_user_id": platform_user_id, "tier_id": cls.tier.id}
        )
        account.with_user(cls.manager).action_adjust(credits, "Opening balance")
        return account

    @staticmethod
    def spec(**overrides):
        spec = dict(TIER_RULES["spec"])
        spec.update(overrides)
        return spec

    def entries_of(self, request_id):
        return self.Ledger.search([("request_id", "=", request_id)], order="id")

    def assertNoNone(self, value, where="result"):
        """XML-RPC cannot carry None: no result may hold one, however deep."""
        self.assertIsNotNone(value, f"{where} is None")
        if isinstance(value, dict):
            for key, item in value.items():
                self.assertNoNone(item, f"{where}[{key!r}]")
        elif isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                self.assertNoNone(item, f"{where}[{index}]")

# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0.html)
import importlib.util
from pathlib import Path

from psycopg2 import IntegrityError

from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tests import tagged
from odoo.tools import mute_logger

from .common import CreditsCase

MIGRATION = Path(__file__).parents[1] / "migrations" / "18.0.1.5.0" / "post-migrate.py"


def load_migration():
    spec = importlib.util.spec_from_file_location("creativeflow_credits_migrate_1_5", MIGRATION)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@tagged("post_install", "-at_install")
class TestModelCatalogue(CreditsCase):
    def test_the_catalogue_ships_the_standard_draft_and_advanced_models(self):
        codes = self.AiModel.search([("code", "like", "creativeflow-%")]).mapped("code")
        self.assertEqual(
            codes, ["creativeflow-standard-v1", "creativeflow-draft-v1", "creativeflow-advanced-v1"]
        )

    def test_a_code_is_unique(self):
        with mute_logger("odoo.sql_db"), self.assertRaises(IntegrityError), self.cr.savepoint():
            self.AiModel.create({"name": "Again", "code": "creativeflow-standard-v1"})

    def test_a_code_has_the_closed_syntax(self):
        for bad in ("Standard", "with space", "-leading-dash", "tab\tinside", "x" * 65, "é-model"):
            with self.subTest(code=bad), self.assertRaises(ValidationError), self.cr.savepoint():
                self.AiModel.create({"name": "Bad", "code": bad})
        good = self.AiModel.create({"name": "Good", "code": "cf-test.model_2"})
        self.assertEqual(good.code, "cf-test.model_2")

    def test_a_model_the_ledger_names_is_archived_not_deleted(self):
        unused = self.AiModel.create({"name": "Unused", "code": "cf-test-unused"})
        unused.unlink()
        self.assertFalse(unused.exists())
        self.service.debit("cf-test-user-1", "cf-req-m-del", "samples", self.spec())
        with self.assertRaises(UserError), self.cr.savepoint():
            self.standard_model.unlink()
        self.assertTrue(self.standard_model.exists())

    def test_the_code_of_a_model_the_ledger_names_never_changes(self):
        unused = self.AiModel.create({"name": "Fresh", "code": "cf-test-fresh"})
        unused.code = "cf-test-renamed"
        self.assertEqual(unused.code, "cf-test-renamed")
        self.service.debit("cf-test-user-1", "cf-req-m-ren", "samples", self.spec())
        with self.assertRaises(UserError), self.cr.savepoint():
            self.standard_model.write({"code": "creativeflow-standard-v2"})
        self.standard_model.write({"code": "creativeflow-standard-v1", "name": "Standard (v1)"})
        self.assertEqual(self.standard_model.code, "creativeflow-standard-v1")

    def test_managers_write_the_catalogue_and_auditors_only_read_it(self):
        created = self.AiModel.with_user(self.manager).create(
            {"name": "Managed", "code": "cf-test-managed"}
        )
        created.with_user(self.manager).write({"description": "by a manager"})
        self.assertEqual(
            self.AiModel.with_user(self.auditor).browse(created.id).read(["code"])[0]["code"],
            "cf-test-managed",
        )
        with self.assertRaises(AccessError), self.cr.savepoint():
            self.AiModel.with_user(self.auditor).create({"name": "No", "code": "cf-test-no"})
        with self.assertRaises(AccessError):
            created.with_user(self.auditor).write({"name": "No"})


@tagged("post_install", "-at_install")
class TestTierModels(CreditsCase):
    def test_the_default_model_must_be_among_the_allowed(self):
        with self.assertRaises(ValidationError), self.cr.savepoint():
            self.tier.write({"default_model_id": self.advanced_model.id})
        with self.assertRaises(ValidationError), self.cr.savepoint():
            self.tier.write({"allowed_model_ids": [(6, 0, [self.draft_model.id])]})
        self.assertEqual(self.tier.allowed_model_ids, self.standard_model | self.draft_model)
        self.tier.write(
            {
                "allowed_model_ids": [(4, self.advanced_model.id)],
                "default_model_id": self.advanced_model.id,
            }
        )
        self.assertEqual(self.tier._default_model_code(), "creativeflow-advanced-v1")

    def test_a_tier_needs_a_default_model(self):
        with self.assertRaises(ValidationError), self.cr.savepoint():
            self.tier.write({"default_model_id": False})
        self.assertEqual(self.tier.default_model_id, self.standard_model)

    def test_a_new_tier_starts_with_the_standard_model(self):
        tier = self.env["creativeflow.subscription.tier"].create(
            {"name": "Fresh", "code": "cf-test-fresh"}
        )
        self.assertEqual(tier.allowed_model_ids, self.standard_model)
        self.assertEqual(tier.default_model_id, self.standard_model)

    def test_allow_advanced_models_is_read_from_the_allowed_models(self):
        self.assertFalse(self.tier.allow_advanced_models)
        self.tier.allowed_model_ids = [(4, self.advanced_model.id)]
        self.assertTrue(self.tier.allow_advanced_models)
        entitlements = self.service.get_entitlements("cf-test-user-1")
        self.assertIs(entitlements["limits"]["advanced_models"], True)
        self.assertIn("creativeflow-advanced-v1", entitlements["limits"]["models"])

    def test_an_archived_model_is_not_granted(self):
        self.draft_model.active = False
        result = self.service.debit(
            "cf-test-user-1", "cf-req-m-arch", "samples", self.spec(model="creativeflow-draft-v1")
        )
        self.assertEqual(result["code"], "tier_forbids")
        self.assertEqual(result["reason"], "model_not_allowed")
        self.assertEqual(self.account.balance, 500)
        limits = self.service.get_entitlements("cf-test-user-1")["limits"]
        self.assertEqual(limits["models"], ["creativeflow-standard-v1"])

    def test_an_archived_default_leaves_requests_without_a_model_refused(self):
        self.standard_model.active = False
        result = self.service.debit("cf-test-user-1", "cf-req-m-nodef", "samples", self.spec())
        self.assertEqual(result["reason"], "model_not_allowed")
        self.assertIn("no default model", result["detail"])
        self.assertIs(
            self.service.get_entitlements("cf-test-user-1")["limits"]["default_model"], False
        )
        named = self.service.debit(
            "cf-test-user-1", "cf-req-m-named", "samples", self.spec(model="creativeflow-draft-v1")
        )
        self.assertEqual(named["model"], "creativeflow-draft-v1")

    def test_a_model_taken_off_the_tier_refuses_later_steps_and_charges_nothing(self):
        self.service.debit(
            "cf-test-user-1", "cf-req-m-later", "samples", self.spec(model="creativeflow-draft-v1")
        )
        balance = self.account.balance
        self.tier.allowed_model_ids = [(3, self.draft_model.id)]
        result = self.service.debit(
            "cf-test-user-1", "cf-req-m-later", "final", self.spec(model="creativeflow-draft-v1")
        )
        self.assertEqual(result["reason"], "model_not_allowed")
        self.assertEqual(self.account.balance, balance)


@tagged("post_install", "-at_install")
class TestGrantedModel(CreditsCase):
    def test_a_replay_gives_the_model_first_granted(self):
        first = self.service.debit(
            "cf-test-user-1", "cf-req-g-1", "samples", self.spec(model="creativeflow-draft-v1")
        )
        again = self.service.debit("cf-test-user-1", "cf-req-g-1", "samples", self.spec())
        self.assertTrue(again["replay"])
        self.assertEqual(again["model"], "creativeflow-draft-v1")
        self.assertEqual(first["model"], "creativeflow-draft-v1")

    def test_a_refund_names_the_model_of_its_debit(self):
        self.service.debit(
            "cf-test-user-1", "cf-req-g-2", "samples", self.spec(model="creativeflow-draft-v1")
        )
        refund = self.service.refund("cf-req-g-2", "samples", "failed")
        self.assertEqual(refund["model"], "creativeflow-draft-v1")
        entries = self.service.ledger_by_requests(["cf-req-g-2"])["entries"]
        self.assertEqual([entry["model"] for entry in entries], ["creativeflow-draft-v1"] * 2)

    def test_an_adjustment_names_no_model(self):
        history = self.service.ledger_for_user("cf-test-user-1")["entries"]
        self.assertEqual([entry["operation"] for entry in history], ["adjustment"])
        self.assertIs(history[0]["model"], False)

    def test_a_quote_names_the_model_a_debit_would_grant(self):
        quote = self.service.quote("cf-test-user-1", self.spec(model="creativeflow-draft-v1"))
        self.assertEqual(quote["model"], "creativeflow-draft-v1")
        self.assertEqual(quote["default_model"], "creativeflow-standard-v1")
        refused = self.service.quote("cf-test-user-1", self.spec(model="creativeflow-advanced-v1"))
        self.assertIs(refused["allowed"], False)
        self.assertEqual(refused["reason"], "model_not_allowed")
        self.assertIs(refused["model"], False)
        self.assertNoNone(refused)

    def test_older_callers_advanced_flag_is_granted_where_the_tier_allows_it(self):
        self.tier.allowed_model_ids = [(4, self.advanced_model.id)]
        result = self.service.debit(
            "cf-test-user-1", "cf-req-g-legacy", "samples", self.spec(advanced_model=True)
        )
        self.assertEqual(result["model"], "creativeflow-advanced-v1")


@tagged("post_install", "-at_install")
class TestMigrationFrom1_3(CreditsCase):
    """The 18.0.1.5.0 post-migration fills the models of tiers from the old stored switch."""

    def add_old_column(self, switches):
        self.env.flush_all()
        self.cr.execute(
            "ALTER TABLE creativeflow_subscription_tier ADD COLUMN allow_advanced_models boolean"
        )
        for tier, on in switches.items():
            self.cr.execute(
                "UPDATE creativeflow_subscription_tier SET allow_advanced_models = %s "
                "WHERE id = %s",
                [on, tier.id],
            )

    def old_tier(self, code):
        tier = self.env["creativeflow.subscription.tier"].create({"name": code, "code": code})
        self.env.flush_all()
        self.cr.execute(
            "DELETE FROM creativeflow_subscription_tier_ai_model_rel WHERE tier_id = %s", [tier.id]
        )
        tier.invalidate_recordset()
        return tier

    def test_tiers_get_the_standard_model_and_the_advanced_one_where_it_was_on(self):
        with_advanced, without = self.old_tier("cf-test-old-on"), self.old_tier("cf-test-old-off")
        self.add_old_column({with_advanced: True, without: False})
        load_migration().migrate(self.cr, "18.0.1.4.0")
        self.env.invalidate_all()
        self.assertEqual(with_advanced.allowed_model_ids, self.standard_model | self.advanced_model)
        self.assertEqual(without.allowed_model_ids, self.standard_model)
        for tier in (with_advanced, without):
            self.assertEqual(tier.default_model_id, self.standard_model)
        # the test tier already had models: left as it was
        self.assertEqual(self.tier.allowed_model_ids, self.standard_model | self.draft_model)

    def test_a_fresh_install_is_left_to_the_data_files(self):
        tier = self.old_tier("cf-test-fresh-install")
        load_migration().migrate(self.cr, False)
        self.env.invalidate_all()
        self.assertFalse(tier.allowed_model_ids)

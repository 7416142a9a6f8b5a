# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0.html)
"""The orchestrator's technical user as shipped (the Orchestrator group alone, no Internal
User, no password, an API key): it can do everything the contract needs, and nothing more."""

from datetime import timedelta

from odoo import fields
from odoo.exceptions import AccessDenied, AccessError
from odoo.tests import tagged

from .common import CreditsCase


@tagged("post_install", "-at_install")
class TestTechnicalUser(CreditsCase):
    def _api_key(self):
        return (
            self.env["res.users.apikeys"]
            .with_user(self.orchestrator)
            .sudo()
            ._generate(None, "orchestrator", None)
        )

    def _rpc_login(self, secret):
        """What a login over XML-RPC or JSON-RPC checks (``common.login``, ``execute_kw``): a
        non-interactive password credential, the password first, then the API keys."""
        credential = {"login": self.orchestrator.login, "password": secret, "type": "password"}
        user = self.orchestrator.with_user(self.orchestrator)
        return user._check_credentials(credential, {"interactive": False})

    def test_it_is_a_share_user_in_the_orchestrator_group_alone_with_no_password(self):
        self.assertFalse(self.orchestrator.has_group("base.group_user"))
        self.assertFalse(self.orchestrator.has_group("base.group_portal"))
        self.assertTrue(self.orchestrator.share)
        self.assertEqual(
            self.orchestrator.groups_id, self.env.ref("creativeflow_credits.group_orchestrator")
        )
        self.env.cr.execute("SELECT password FROM res_users WHERE id = %s", [self.orchestrator.id])
        self.assertFalse(self.env.cr.fetchone()[0])

    def test_it_logs_in_over_rpc_with_its_api_key_and_with_nothing_else(self):
        key = self._api_key()
        self.assertEqual(
            self.env["res.users.apikeys"]._check_credentials(scope="rpc", key=key),
            self.orchestrator.id,
        )
        info = self._rpc_login(key)
        self.assertEqual((info["uid"], info["auth_method"]), (self.orchestrator.id, "apikey"))
        for wrong in ("orchestrator", key[:-1] + ("0" if key[-1] != "0" else "1")):
            with self.subTest(secret=wrong), self.assertRaises(AccessDenied):
                self._rpc_login(wrong)

    def test_it_can_call_every_contract_method(self):
        user_id = self.account.platform_user_id
        entitlements = self.service.get_entitlements(user_id)
        self.assertTrue(entitlements["ok"], entitlements)
        debit = self.service.debit(user_id, "cf-test-tech-1", "samples", self.spec(), "c-1")
        self.assertTrue(debit["ok"], debit)
        again = self.service.debit(user_id, "cf-test-tech-1", "final", self.spec(samples=1))
        self.assertTrue(again["ok"], again)
        refund = self.service.refund("cf-test-tech-1", "samples", "test", "c-1")
        self.assertTrue(refund["ok"], refund)
        found = self.service.ledger_by_requests(["cf-test-tech-1"])
        self.assertEqual(
            [(e["action"], e["operation"]) for e in found["entries"]],
            [("samples", "debit"), ("final", "debit"), ("samples", "refund")],
        )
        now = self.env.cr.now()  # create_date of this transaction's entries
        window = self.service.ledger_window(
            fields.Datetime.to_string(now - timedelta(seconds=1)),
            fields.Datetime.to_string(now + timedelta(seconds=1)),
        )
        self.assertTrue(window["ok"], window)
        self.assertIn(debit["entry_id"], [e["id"] for e in window["entries"]])
        quote = self.service.quote(user_id, self.spec())
        self.assertEqual(quote["code"], "quoted", quote)
        history = self.service.ledger_for_user(user_id, 2)
        self.assertTrue(history["ok"], history)
        self.assertEqual(
            [(e["action"], e["operation"]) for e in history["entries"]],
            [("samples", "refund"), ("final", "debit")],
        )
        asset = self.service.record_generated_asset(
            {
                "request_id": "cf-test-tech-1",
                "platform_user_id": user_id,
                "storage_key": "assets/cf-test-tech-1.png",
                "format": "png",
                "width": 1024,
                "height": 1024,
                "checksum_sha256": "0" * 64,
                "byte_size": 1024,
                "debit_actions": ["final"],
            }
        )
        self.assertTrue(asset["created"], asset)
        self.assertEqual(asset["ledger_entry_ids"], [again["entry_id"]])
        self.assertEqual(
            self.service.get_entitlements(user_id)["balance"], entitlements["balance"] - 10
        )

    def test_it_reads_only_its_own_user_record(self):
        users = self.env["res.users"].with_user(self.orchestrator)
        admin = self.env.ref("base.user_admin")
        for other in (admin, self.manager, self.auditor):
            with self.subTest(user=other.login), self.assertRaises(AccessError):
                users.browse(other.id).read(["login", "email"])
        found = users.search_read([], ["login"])
        self.assertEqual([u["login"] for u in found], [self.orchestrator.login])
        self.assertEqual(users.search_count([("login", "=", admin.login)]), 0)

    def test_it_reads_no_partner_at_all(self):
        partner = self.env["res.partner"].create(
            {"name": "CF test customer", "email": "customer@example.com", "phone": "+1 555"}
        )
        self.account.partner_id = partner
        partners = self.env["res.partner"].with_user(self.orchestrator)
        for record in (partner, self.env.ref("base.partner_admin"), self.orchestrator.partner_id):
            with self.subTest(partner=record.id), self.assertRaises(AccessError):
                partners.browse(record.id).read(["name", "email", "phone"])
        with self.assertRaises(AccessError):
            partners.search_read([], ["email"])

    def test_it_reads_no_tier_account_or_ledger_directly(self):
        self.service.debit(self.account.platform_user_id, "cf-test-tech-2", "samples", self.spec())
        for model in (
            "creativeflow.ai.model",
            "creativeflow.subscription.tier",
            "creativeflow.credit.account",
            "creativeflow.credit.ledger",
            "creativeflow.generated.asset",
        ):
            with self.subTest(model=model), self.assertRaises(AccessError):
                self.env[model].with_user(self.orchestrator).search_read([], ["id"])

    def test_it_changes_nothing_directly(self):
        with self.assertRaises(AccessError):
            self.account.with_user(self.orchestrator).write({"tier_id": self.tier.id})
        with self.assertRaises(AccessError):
            self.tier.with_user(self.orchestrator).write({"price_per_sample": 0})
        with self.assertRaises(AccessError):
            self.account.with_user(self.orchestrator).action_adjust(10, "not mine to give")

    def test_an_internal_user_in_the_orchestrator_group_still_sees_every_user(self):
        """The rule keeping the group to its own res.users record binds share users only."""
        internal = self.manager
        internal.groups_id = [(4, self.env.ref("creativeflow_credits.group_orchestrator").id)]
        users = self.env["res.users"].with_user(internal)
        admin = self.env.ref("base.user_admin")
        self.assertEqual(users.browse(admin.id).read(["login"])[0]["login"], admin.login)

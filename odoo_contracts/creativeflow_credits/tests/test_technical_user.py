# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0.html)
"""The orchestrator's technical user as shipped (the Orchestrator group alone, no Internal
User, no password): it can do everything the contract needs, and nothing more."""

from odoo.exceptions import AccessError
from odoo.tests import tagged

from .common import CreditsCase


@tagged("post_install", "-at_install")
class TestTechnicalUser(CreditsCase):
    def test_it_is_not_an_internal_user_and_has_no_password(self):
        self.assertFalse(self.orchestrator.has_group("base.group_user"))
        self.assertTrue(self.orchestrator.has_group("creativeflow_credits.group_orchestrator"))
        self.env.cr.execute("SELECT password FROM res_users WHERE id = %s", [self.orchestrator.id])
        self.assertFalse(self.env.cr.fetchone()[0])

    def test_it_can_call_every_contract_method(self):
        entitlements = self.service.get_entitlements(self.account.platform_user_id)
        self.assertTrue(entitlements["ok"])
        debit = self.service.debit(
            self.account.platform_user_id, "cf-test-tech-1", "samples", self.spec(), "c-1"
        )
        self.assertTrue(debit["ok"], debit)
        refund = self.service.refund("cf-test-tech-1", "samples", "test", "c-1")
        self.assertTrue(refund["ok"], refund)
        found = self.service.ledger_by_requests(["cf-test-tech-1"])
        self.assertEqual([e["operation"] for e in found["entries"]], ["debit", "refund"], found)

    def test_it_logs_in_with_an_api_key_alone(self):
        key = (
            self.env["res.users.apikeys"]
            .with_user(self.orchestrator)
            .sudo()
            ._generate(None, "orchestrator", None)
        )
        uid = self.env["res.users.apikeys"]._check_credentials(scope="rpc", key=key)
        self.assertEqual(uid, self.orchestrator.id)

    def test_it_reads_no_other_users_login_or_email(self):
        other = self.env.ref("base.user_admin")
        users = self.env["res.users"].with_user(self.orchestrator)
        with self.assertRaises(AccessError):
            users.browse(other.id).read(["login", "email"])

    def test_it_reads_no_partners_contact_details(self):
        partner = self.env["res.partner"].create(
            {"name": "CF test customer", "email": "customer@example.com", "phone": "+1 555"}
        )
        partners = self.env["res.partner"].with_user(self.orchestrator)
        with self.assertRaises(AccessError):
            partners.browse(partner.id).read(["email", "phone"])

    def test_it_changes_nothing_directly(self):
        with self.assertRaises(AccessError):
            self.account.with_user(self.orchestrator).write({"tier_id": self.tier.id})
        with self.assertRaises(AccessError):
            self.tier.with_user(self.orchestrator).write({"price_per_sample": 0})

# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0.html)
from psycopg2 import IntegrityError

from odoo.exceptions import AccessError, UserError
from odoo.tests import tagged
from odoo.tools import mute_logger

from .common import CreditsCase


@tagged("post_install", "-at_install")
class TestBalanceAdjustment(CreditsCase):
    def test_an_adjustment_writes_its_entry(self):
        account = self.account.with_user(self.manager)
        entry_id = account.action_adjust(-120, "double charge last month")
        entry = self.Ledger.browse(entry_id)
        self.assertEqual(entry.account_id, self.account)
        self.assertEqual(entry.operation, "adjustment")
        self.assertEqual(entry.amount, -120)
        self.assertEqual(entry.balance_after, 380)
        self.assertEqual(entry.reason, "double charge last month")
        self.assertFalse(entry.request_id)
        self.assertFalse(entry.action)
        self.assertEqual(self.account.balance, 380)

    def test_an_adjustment_needs_a_non_zero_amount_and_a_reason(self):
        account = self.account.with_user(self.manager)
        for amount, reason in ((0, "nothing"), (True, "a boolean"), (1.5, "a float"), (5, " ")):
            with self.subTest(amount=amount, reason=reason), self.assertRaises(UserError):
                account.action_adjust(amount, reason)
        self.assertEqual(self.account.balance, 500)

    def test_an_adjustment_cannot_make_a_balance_negative(self):
        with self.assertRaises(UserError):
            self.account.with_user(self.manager).action_adjust(-501, "too much")
        self.assertEqual(self.account.balance, 500)
        self.account.with_user(self.manager).action_adjust(-500, "account closed")
        self.assertEqual(self.account.balance, 0)

    def test_only_managers_adjust(self):
        for user in (self.auditor, self.orchestrator):
            with self.subTest(user=user.login), self.assertRaises(AccessError):
                self.account.with_user(user).action_adjust(10, "not mine to give")
        self.assertEqual(self.account.balance, 500)

    def test_the_wizard_adjusts_the_balance(self):
        wizard = (
            self.env["creativeflow.credit.adjust.wizard"]
            .with_user(self.manager)
            .create({"account_id": self.account.id, "amount": 25, "reason": "promotion"})
        )
        self.assertEqual(wizard.current_balance, 500)
        self.assertEqual(wizard.new_balance, 525)
        action = wizard.action_confirm()
        self.assertEqual(action, {"type": "ir.actions.act_window_close"})
        self.assertEqual(self.account.balance, 525)


@tagged("post_install", "-at_install")
class TestBalanceIntegrity(CreditsCase):
    def test_the_balance_is_not_written_directly(self):
        for account in (self.account.with_user(self.manager), self.account.sudo()):
            with self.subTest(su=account.env.su), self.assertRaises(UserError):
                account.write({"balance": 1000000})
        self.assertEqual(self.account.balance, 500)

    def test_an_account_opens_at_zero(self):
        with self.assertRaises(UserError):
            self.env["creativeflow.credit.account"].create(
                {"platform_user_id": "cf-test-rich", "tier_id": self.tier.id, "balance": 10}
            )
        account = self.env["creativeflow.credit.account"].create(
            {"platform_user_id": "cf-test-new", "tier_id": self.tier.id}
        )
        self.assertEqual(account.balance, 0)

    def test_the_database_refuses_a_negative_balance(self):
        with self.assertRaises(IntegrityError), mute_logger("odoo.sql_db"):
            self.env.cr.execute(
                "UPDATE creativeflow_credit_account SET balance = -1 WHERE id = %s",
                [self.account.id],
            )

    def test_one_account_per_platform_user(self):
        with self.assertRaises(IntegrityError), mute_logger("odoo.sql_db"):
            self.env["creativeflow.credit.account"].create(
                {"platform_user_id": "cf-test-user-1", "tier_id": self.tier.id}
            )
            self.env.flush_all()

    def test_a_used_platform_user_id_cannot_change(self):
        with self.assertRaises(UserError):
            self.account.write({"platform_user_id": "cf-test-renamed"})
        fresh = self.env["creativeflow.credit.account"].create(
            {"platform_user_id": "cf-test-typo", "tier_id": self.tier.id}
        )
        fresh.write({"platform_user_id": "cf-test-fixed"})
        self.assertEqual(fresh.platform_user_id, "cf-test-fixed")

# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0.html)
from psycopg2 import IntegrityError

from odoo.exceptions import UserError
from odoo.tests import tagged
from odoo.tools import mute_logger

from .common import CreditsCase


@tagged("post_install", "-at_install")
class TestLedgerImmutability(CreditsCase):
    def setUp(self):
        super().setUp()
        result = self.service.debit("cf-test-user-1", "cf-req-imm", "samples", self.spec())
        self.entry = self.Ledger.browse(result["entry_id"])

    def test_entries_cannot_be_written(self):
        for env_entry in (self.entry, self.entry.with_user(self.manager), self.entry.sudo()):
            with (
                self.subTest(user=env_entry.env.user.login, su=env_entry.env.su),
                self.assertRaises(UserError),
            ):
                env_entry.write({"amount": 1})
        self.assertEqual(self.entry.amount, 8)

    def test_entries_cannot_be_deleted(self):
        for env_entry in (self.entry.with_user(self.manager), self.entry.sudo()):
            with (
                self.subTest(user=env_entry.env.user.login, su=env_entry.env.su),
                self.assertRaises(UserError),
            ):
                env_entry.unlink()
        self.assertTrue(self.entry.exists())

    def test_entries_cannot_be_duplicated(self):
        with self.assertRaises(UserError):
            self.entry.copy()

    def test_entries_are_not_written_outside_the_service(self):
        # A manager holds the create right, yet an entry that no balance reflects is refused:
        # corrections go through "Adjust balance".
        with self.assertRaises(UserError):
            self.Ledger.with_user(self.manager).create(
                {
                    "account_id": self.account.id,
                    "operation": "adjustment",
                    "amount": 100,
                    "balance_after": 592,
                    "reason": "hand-written",
                }
            )
        self.assertEqual(self.account.balance, 492)


@tagged("post_install", "-at_install")
class TestLedgerUniqueness(CreditsCase):
    def entry_values(self, request_id, operation="debit"):
        return {
            "account_id": self.account.id,
            "request_id": request_id,
            "action": "samples",
            "operation": operation,
            "amount": 8,
            "balance_after": 492,
        }

    def test_one_entry_per_request_action_and_operation(self):
        self.service.debit("cf-test-user-1", "cf-req-uniq", "samples", self.spec())
        # Even in superuser mode, which the service uses, the database refuses a second debit.
        with self.assertRaises(IntegrityError), mute_logger("odoo.sql_db"):
            self.Ledger.sudo().create(self.entry_values("cf-req-uniq"))
            self.env.flush_all()

    def test_one_refund_per_request_and_action(self):
        self.service.debit("cf-test-user-1", "cf-req-uniq-r", "samples", self.spec())
        self.service.refund("cf-req-uniq-r", "samples", "failed")
        with self.assertRaises(IntegrityError), mute_logger("odoo.sql_db"):
            self.Ledger.sudo().create(self.entry_values("cf-req-uniq-r", "refund"))
            self.env.flush_all()

    def test_adjustments_without_request_id_may_repeat(self):
        self.account.with_user(self.manager).action_adjust(10, "goodwill")
        self.account.with_user(self.manager).action_adjust(10, "goodwill")
        adjustments = self.Ledger.search(
            [("account_id", "=", self.account.id), ("operation", "=", "adjustment")]
        )
        # the opening balance and the two goodwill gestures
        self.assertEqual(len(adjustments), 3)
        self.assertEqual(self.account.balance, 520)


@tagged("post_install", "-at_install")
class TestLedgerBalanceChange(CreditsCase):
    """The pivot sums ``balance_change``: its total is the net movement of the credits."""

    def test_debits_take_refunds_give_back_adjustments_as_entered(self):
        debit = self.service.debit("cf-test-user-1", "cf-req-net", "samples", self.spec())
        refund = self.service.refund("cf-req-net", "samples", "test")
        self.account.with_user(self.manager).action_adjust(-3, "correction")
        entries = {
            e.operation: e.balance_change
            for e in self.Ledger.search([("account_id", "=", self.account.id)])
        }
        self.assertEqual(entries["debit"], -debit["amount"])
        self.assertEqual(entries["refund"], refund["amount"])
        self.assertIn(
            -3,
            [
                e.balance_change
                for e in self.Ledger.search(
                    [("account_id", "=", self.account.id), ("operation", "=", "adjustment")]
                )
            ],
        )
        net = sum(
            self.Ledger.search([("account_id", "=", self.account.id)]).mapped("balance_change")
        )
        self.assertEqual(net, self.account.balance)  # from 0, every movement is an entry

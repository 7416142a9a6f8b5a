# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0.html)
"""``record_generated_asset`` and the ``creativeflow.generated.asset`` model."""

import hashlib

from psycopg2 import IntegrityError

from odoo.exceptions import AccessError, UserError
from odoo.tests import tagged
from odoo.tools import mute_logger

from .common import CreditsCase

RESULT_KEYS = {
    "ok",
    "code",
    "created",
    "asset_id",
    "request_id",
    "user_id",
    "storage_key",
    "format",
    "width",
    "height",
    "checksum_sha256",
    "byte_size",
    "debit_actions",
    "ledger_entry_ids",
    "recorded_at",
}


class AssetCase(CreditsCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.Asset = cls.env["creativeflow.generated.asset"]

    def pay(self, request_id, *actions, user="cf-test-user-1"):
        """Debit ``request_id`` for each action; the debits' ledger entries."""
        for action in actions:
            result = self.service.debit(user, request_id, action, self.spec(samples=1))
            self.assertTrue(result["ok"], result)
        return self.Ledger.search(
            [("request_id", "=", request_id), ("operation", "=", "debit")], order="id"
        )

    @staticmethod
    def asset(request_id, user="cf-test-user-1", **changes):
        values = {
            "request_id": request_id,
            "platform_user_id": user,
            "storage_key": f"assets/{user}/{request_id}/final.png",
            "format": "png",
            "width": 2048,
            "height": 1536,
            "checksum_sha256": hashlib.sha256(request_id.encode()).hexdigest(),
            "byte_size": 5242880,
            "debit_actions": ["samples", "final"],
        }
        values.update(changes)
        return values

    def assets_of(self, request_id):
        return self.Asset.search([("request_id", "=", request_id)])


@tagged("post_install", "-at_install")
class TestRecordGeneratedAsset(AssetCase):
    def test_an_asset_is_recorded_with_the_debits_that_paid_for_it(self):
        debits = self.pay("cf-req-asset-1", "samples", "regeneration-1", "final")
        result = self.service.record_generated_asset(
            self.asset("cf-req-asset-1", debit_actions=["final", "samples", "regeneration-1"])
        )
        asset = self.assets_of("cf-req-asset-1")
        self.assertEqual(len(asset), 1)
        self.assertEqual(set(result), RESULT_KEYS)
        self.assertEqual(
            {key: result[key] for key in RESULT_KEYS - {"recorded_at"}},
            {
                "ok": True,
                "code": "recorded",
                "created": True,
                "asset_id": asset.id,
                "request_id": "cf-req-asset-1",
                "user_id": "cf-test-user-1",
                "storage_key": "assets/cf-test-user-1/cf-req-asset-1/final.png",
                "format": "png",
                "width": 2048,
                "height": 1536,
                "checksum_sha256": hashlib.sha256(b"cf-req-asset-1").hexdigest(),
                "byte_size": 5242880,
                "debit_actions": ["final", "regeneration-1", "samples"],
                "ledger_entry_ids": debits.ids,
            },
        )
        self.assertRegex(result["recorded_at"], r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
        self.assertEqual(asset.account_id, self.account)
        self.assertEqual(asset.platform_user_id, "cf-test-user-1")
        self.assertEqual(asset.checksum, result["checksum_sha256"])
        self.assertEqual(asset.ledger_entry_ids, debits)
        # both sides of the link, as the account and ledger entry forms show them
        self.assertEqual(self.account.generated_asset_ids, asset)
        self.assertEqual(self.account.generated_asset_count, 1)
        for debit in debits:
            self.assertEqual(debit.generated_asset_ids, asset)
        self.assertNoNone(result)

    def test_the_same_asset_again_is_the_recorded_one(self):
        self.pay("cf-req-asset-2", "samples", "final")
        first = self.service.record_generated_asset(self.asset("cf-req-asset-2"))
        again = self.service.record_generated_asset(self.asset("cf-req-asset-2"))
        reordered = self.service.record_generated_asset(
            self.asset("cf-req-asset-2", debit_actions=["final", "samples"])
        )
        self.assertEqual(again, {**first, "created": False})
        self.assertEqual(reordered, {**first, "created": False})
        self.assertEqual(len(self.assets_of("cf-req-asset-2")), 1)

    def test_the_replay_holds_even_once_a_debit_is_refunded(self):
        self.pay("cf-req-asset-3", "samples", "final")
        first = self.service.record_generated_asset(self.asset("cf-req-asset-3"))
        self.service.refund("cf-req-asset-3", "samples", "test")
        again = self.service.record_generated_asset(self.asset("cf-req-asset-3"))
        self.assertEqual(again["asset_id"], first["asset_id"])
        self.assertFalse(again["created"])

    def test_other_values_for_a_recorded_request_are_a_conflict(self):
        self.pay("cf-req-asset-4", "samples", "final")
        first = self.service.record_generated_asset(self.asset("cf-req-asset-4"))
        cases = [
            ({"storage_key": "elsewhere.png"}, ["storage_key"]),
            ({"format": "jpeg", "width": 1024}, ["format", "width"]),
            ({"checksum_sha256": "0" * 64, "byte_size": 1}, ["checksum_sha256", "byte_size"]),
            ({"debit_actions": ["final"]}, ["debit_actions"]),
            ({"platform_user_id": "cf-test-user-2"}, ["platform_user_id"]),
        ]
        for changes, differences in cases:
            with self.subTest(changes=changes):
                result = self.service.record_generated_asset(
                    self.asset("cf-req-asset-4", **changes)
                )
                self.assertEqual(result["ok"], False)
                self.assertEqual(result["code"], "asset_conflict")
                self.assertEqual(result["differences"], differences)
                self.assertIsInstance(result["detail"], str)
        asset = self.assets_of("cf-req-asset-4")
        self.assertEqual(asset.storage_key, self.asset("cf-req-asset-4")["storage_key"])
        self.assertEqual(asset.byte_size, 5242880)
        again = self.service.record_generated_asset(self.asset("cf-req-asset-4"))
        self.assertEqual(again["asset_id"], first["asset_id"])

    def test_an_unknown_account_is_refused(self):
        self.pay("cf-req-asset-5", "samples", "final")
        result = self.service.record_generated_asset(
            self.asset("cf-req-asset-5", user="cf-test-nobody")
        )
        self.assertEqual(result, {"ok": False, "code": "unknown_account"})
        self.assertFalse(self.assets_of("cf-req-asset-5"))

    def test_debits_the_request_does_not_have_are_refused(self):
        self.pay("cf-req-asset-6", "samples")
        missing = self.service.record_generated_asset(
            self.asset("cf-req-asset-6", debit_actions=["samples", "regeneration-2", "final"])
        )
        self.assertEqual(missing["code"], "unknown_debit")
        self.assertEqual(missing["actions"], ["final", "regeneration-2"])
        self.assertIsInstance(missing["detail"], str)
        unpaid = self.service.record_generated_asset(
            self.asset("cf-req-asset-unpaid", debit_actions=["final"])
        )
        self.assertEqual(unpaid["code"], "unknown_debit")
        # a refund of the request is no debit
        self.service.refund("cf-req-asset-6", "samples", "test")
        self.assertEqual(
            self.service.record_generated_asset(
                self.asset("cf-req-asset-6", debit_actions=["final"])
            )["code"],
            "unknown_debit",
        )
        self.assertFalse(self.assets_of("cf-req-asset-6") | self.assets_of("cf-req-asset-unpaid"))

    def test_debits_of_another_account_are_refused(self):
        self.pay("cf-req-asset-7", "samples", "final")
        result = self.service.record_generated_asset(
            self.asset("cf-req-asset-7", user="cf-test-user-2")
        )
        self.assertEqual(result["code"], "request_conflict")
        self.assertIsInstance(result["detail"], str)
        self.assertFalse(self.assets_of("cf-req-asset-7"))
        self.assertFalse(self.other_account.generated_asset_ids)

    def test_values_that_break_the_rules_are_invalid_requests(self):
        self.pay("cf-req-asset-8", "samples", "final")
        valid = self.asset("cf-req-asset-8")
        without_size = {key: value for key, value in valid.items() if key != "byte_size"}
        bad_assets = [
            None,
            ["cf-req-asset-8"],
            without_size,
            {**valid, "resolution": "2048x1536"},
            {**valid, "request_id": ""},
            {**valid, "request_id": "r" * 256},
            {**valid, "platform_user_id": 42},
            {**valid, "storage_key": "   "},
            {**valid, "storage_key": "a\x00b"},
            {**valid, "storage_key": "a\nb"},
            {**valid, "storage_key": "k" * 1025},
            {**valid, "format": "PNG"},
            {**valid, "format": ""},
            {**valid, "format": "p" * 17},
            {**valid, "width": 0},
            {**valid, "height": -1},
            {**valid, "byte_size": 2**31},
            {**valid, "width": True},
            {**valid, "width": "2048"},
            {**valid, "checksum_sha256": "A" * 64},
            {**valid, "checksum_sha256": "a" * 63},
            {**valid, "checksum_sha256": "g" * 64},
            {**valid, "debit_actions": []},
            {**valid, "debit_actions": "final"},
            {**valid, "debit_actions": ["final", "final"]},
            {**valid, "debit_actions": ["final", "bogus"]},
            {**valid, "debit_actions": ["final-1"]},
            {**valid, "debit_actions": [f"regeneration-{n}" for n in range(1, 102)]},
        ]
        for bad in bad_assets:
            with self.subTest(asset=bad):
                result = self.service.record_generated_asset(bad)
                self.assertEqual(result["ok"], False)
                self.assertEqual(result["code"], "invalid_request")
                self.assertIsInstance(result["detail"], str)
        self.assertFalse(self.assets_of("cf-req-asset-8"))
        self.assertTrue(self.service.record_generated_asset(valid)["created"])

    def test_every_refusal_holds_no_none(self):
        self.pay("cf-req-asset-9", "samples", "final")
        self.service.record_generated_asset(self.asset("cf-req-asset-9"))
        for asset in (
            self.asset("cf-req-asset-9", byte_size=1),
            self.asset("cf-req-asset-10"),
            self.asset("cf-req-asset-9", user="cf-test-nobody"),
            self.asset("cf-req-asset-9", format="PNG"),
        ):
            with self.subTest(asset=asset):
                self.assertNoNone(self.service.record_generated_asset(asset))


@tagged("post_install", "-at_install")
class TestGeneratedAssetModel(AssetCase):
    def setUp(self):
        super().setUp()
        self.pay("cf-req-model-1", "samples", "final")
        result = self.service.record_generated_asset(self.asset("cf-req-model-1"))
        self.recorded = self.Asset.browse(result["asset_id"])

    def test_auditors_and_managers_read_assets(self):
        for user in (self.auditor, self.manager):
            with self.subTest(user=user.login):
                found = self.Asset.with_user(user).search([("request_id", "=", "cf-req-model-1")])
                self.assertEqual(found, self.recorded)
                self.assertEqual(
                    found.read(["storage_key"])[0]["storage_key"], self.recorded.storage_key
                )
                account = self.account.with_user(user)
                self.assertEqual(account.generated_asset_count, 1)

    def test_no_group_creates_changes_or_deletes_an_asset(self):
        values = {
            "account_id": self.account.id,
            "request_id": "cf-req-forged",
            "storage_key": "forged.png",
            "format": "png",
            "width": 1,
            "height": 1,
            "checksum": "0" * 64,
            "byte_size": 1,
        }
        for user in (self.auditor, self.manager, self.orchestrator):
            with self.subTest(user=user.login):
                with self.assertRaises((AccessError, UserError)):
                    self.Asset.with_user(user).create(values)
                with self.assertRaises((AccessError, UserError)):
                    self.recorded.with_user(user).write({"storage_key": "changed.png"})
                with self.assertRaises((AccessError, UserError)):
                    self.recorded.with_user(user).unlink()
        self.assertFalse(self.assets_of("cf-req-forged"))

    def test_even_the_superuser_neither_changes_nor_deletes_an_asset(self):
        with self.assertRaises(UserError):
            self.recorded.sudo().write({"storage_key": "changed.png"})
        with self.assertRaises(UserError):
            self.recorded.sudo().unlink()
        with self.assertRaises(UserError):
            self.recorded.sudo().copy()
        self.assertEqual(self.recorded.storage_key, self.asset("cf-req-model-1")["storage_key"])

    def test_the_orchestrator_reads_no_asset_directly(self):
        with self.assertRaises(AccessError):
            self.Asset.with_user(self.orchestrator).search_read([], ["storage_key"])

    def test_a_request_has_one_asset_only(self):
        values = {
            "account_id": self.account.id,
            "request_id": "cf-req-model-1",
            "storage_key": "second.png",
            "format": "png",
            "width": 1,
            "height": 1,
            "checksum": "0" * 64,
            "byte_size": 1,
        }
        with mute_logger("odoo.sql_db"), self.assertRaises(IntegrityError), self.cr.savepoint():
            self.Asset.sudo().create(values)

    def test_the_account_smart_button_opens_its_assets(self):
        action = self.account.with_user(self.auditor).action_view_generated_assets()
        self.assertEqual(action["res_model"], "creativeflow.generated.asset")
        self.assertEqual(self.Asset.search(action["domain"]), self.recorded)

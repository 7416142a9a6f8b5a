# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0.html)
import re
from datetime import timedelta

from odoo.exceptions import AccessError, UserError
from odoo.tests import tagged

from .common import TIER_RULES, CreditsCase

ENTRY_KEYS = {
    "id",
    "user_id",
    "request_id",
    "action",
    "operation",
    "amount",
    "balance_after",
    "reason",
    "correlation_id",
    "created_at",
}
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


@tagged("post_install", "-at_install")
class TestEntitlements(CreditsCase):
    def test_entitlements_give_tier_limits_prices_and_balance(self):
        result = self.service.get_entitlements("cf-test-user-1")
        self.assertEqual(
            result,
            {
                "ok": True,
                "code": "ok",
                "user_id": "cf-test-user-1",
                "tier": {"code": "cf-test-limited", "name": "Test limited"},
                "limits": {
                    "formats": ["png", "jpeg"],
                    "max_width": 2048,
                    "max_height": 2048,
                    "max_samples_per_request": 4,
                    "advanced_models": False,
                    "max_requests_in_flight": 3,
                },
                "prices": {"sample": 2, "final": 10, "regeneration_sample": 1},
                "balance": 500,
            },
        )

    def test_entitlements_of_an_unknown_user(self):
        result = self.service.get_entitlements("cf-test-nobody")
        self.assertEqual(result, {"ok": False, "code": "unknown_account"})

    def test_entitlements_refuse_a_bad_user_id(self):
        for bad in ("", "   ", 42, False, None, ["cf-test-user-1"]):
            with self.subTest(platform_user_id=bad):
                result = self.service.get_entitlements(bad)
                self.assertFalse(result["ok"])
                self.assertEqual(result["code"], "invalid_request")
                self.assertIsInstance(result["detail"], str)


@tagged("post_install", "-at_install")
class TestDebit(CreditsCase):
    def test_debit_writes_one_entry_and_lowers_the_balance(self):
        result = self.service.debit(
            "cf-test-user-1", "cf-req-1", "samples", self.spec(samples=4), "corr-1"
        )
        entry = self.entries_of("cf-req-1")
        self.assertEqual(len(entry), 1)
        self.assertEqual(
            result,
            {
                "ok": True,
                "code": "debited",
                "replay": False,
                "entry_id": entry.id,
                "user_id": "cf-test-user-1",
                "request_id": "cf-req-1",
                "action": "samples",
                "amount": 8,
                "balance_after": 492,
            },
        )
        self.assertEqual(self.account.balance, 492)
        self.assertEqual(entry.account_id, self.account)
        self.assertEqual(entry.platform_user_id, "cf-test-user-1")
        self.assertEqual(entry.operation, "debit")
        self.assertEqual(entry.action, "samples")
        self.assertEqual(entry.amount, 8)
        self.assertEqual(entry.balance_after, 492)
        self.assertEqual(entry.correlation_id, "corr-1")
        self.assertFalse(entry.reason)

    def test_insufficient_credits_write_nothing(self):
        result = self.service.debit("cf-test-user-poor", "cf-req-poor", "samples", self.spec())
        self.assertEqual(
            result, {"ok": False, "code": "insufficient_credits", "required": 8, "balance": 5}
        )
        self.assertEqual(self.poor_account.balance, 5)
        self.assertFalse(self.entries_of("cf-req-poor"))

    def test_the_shared_rule_table(self):
        """Each tier rule with its reason, in the contract's order (the first broken rule is the
        reason), each action with its price, formats compared without case, the final asset
        free of the samples limit, the cap on new requests only: tier_rules.json, which the
        emulator and the product's in-memory twin pass too."""
        for index, case in enumerate(TIER_RULES["cases"]):
            request_id = f"cf-req-table-{index}"
            with self.subTest(case=case["name"]):
                before = self.account.balance
                result = self.service.debit(
                    "cf-test-user-1", request_id, case["action"], self.spec(**case["spec"])
                )
                if "reason" in case:
                    self.assertEqual(result["code"], "tier_forbids")
                    self.assertEqual(result["reason"], case["reason"])
                    self.assertEqual(result["tier"], TIER_RULES["tier"]["code"])
                    self.assertIsInstance(result["detail"], str)
                    self.assertFalse(self.entries_of(request_id))
                    self.assertEqual(self.account.balance, before)
                else:
                    self.assertEqual(result["code"], "debited")
                    self.assertEqual(result["amount"], case["amount"])
                    self.assertEqual(self.account.balance, before - case["amount"])

    def test_a_repeated_debit_is_a_replay(self):
        first = self.service.debit("cf-test-user-1", "cf-req-replay", "samples", self.spec())
        # Whatever the tier or the balance are now, the first result comes back.
        self.tier.max_samples_per_request = 1
        second = self.service.debit(
            "cf-test-user-1", "cf-req-replay", "samples", self.spec(samples=4), "corr-2"
        )
        self.assertTrue(second["replay"])
        self.assertEqual({**second, "replay": False}, first)
        self.assertEqual(len(self.entries_of("cf-req-replay")), 1)
        self.assertEqual(self.account.balance, 500 - 8)

    def test_a_debit_after_its_refund_is_still_a_replay(self):
        first = self.service.debit("cf-test-user-1", "cf-req-paid-once", "final", self.spec())
        self.service.refund("cf-req-paid-once", "final", "render failed")
        again = self.service.debit("cf-test-user-1", "cf-req-paid-once", "final", self.spec())
        self.assertTrue(again["replay"])
        self.assertEqual(again["entry_id"], first["entry_id"])
        self.assertEqual(self.account.balance, 500)

    def test_a_request_debited_to_another_account_is_a_conflict(self):
        self.service.debit("cf-test-user-1", "cf-req-shared", "samples", self.spec())
        result = self.service.debit("cf-test-user-2", "cf-req-shared", "samples", self.spec())
        self.assertEqual(result["ok"], False)
        self.assertEqual(result["code"], "request_conflict")
        self.assertIsInstance(result["detail"], str)
        self.assertEqual(self.other_account.balance, 500)
        self.assertEqual(len(self.entries_of("cf-req-shared")), 1)

    def test_debit_of_an_unknown_account(self):
        result = self.service.debit("cf-test-nobody", "cf-req-unknown", "samples", self.spec())
        self.assertEqual(result, {"ok": False, "code": "unknown_account"})
        self.assertFalse(self.entries_of("cf-req-unknown"))

    def test_bad_arguments_are_invalid_requests(self):
        spec = self.spec()
        without_samples = {key: value for key, value in spec.items() if key != "samples"}
        cases = [
            ("", "cf-req-bad", "samples", spec, False),
            (7, "cf-req-bad", "samples", spec, False),
            ("cf-test-user-1", "", "samples", spec, False),
            ("cf-test-user-1", None, "samples", spec, False),
            ("cf-test-user-1", "cf-req-bad", "sample", spec, False),
            ("cf-test-user-1", "cf-req-bad", "final-1", spec, False),
            ("cf-test-user-1", "cf-req-bad", "final-02", spec, False),
            ("cf-test-user-1", "cf-req-bad", "regeneration-0", spec, False),
            ("cf-test-user-1", "cf-req-bad", "regeneration-", spec, False),
            ("cf-test-user-1", "cf-req-bad", "samples\n", spec, False),
            ("cf-test-user-1", "cf-req-bad", None, spec, False),
            ("cf-test-user-1", "cf-req-bad", "samples", None, False),
            ("cf-test-user-1", "cf-req-bad", "samples", [spec], False),
            ("cf-test-user-1", "cf-req-bad", "samples", without_samples, False),
            ("cf-test-user-1", "cf-req-bad", "samples", self.spec(format=""), False),
            ("cf-test-user-1", "cf-req-bad", "samples", self.spec(format=3), False),
            ("cf-test-user-1", "cf-req-bad", "samples", self.spec(samples=0), False),
            ("cf-test-user-1", "cf-req-bad", "samples", self.spec(samples="4"), False),
            ("cf-test-user-1", "cf-req-bad", "samples", self.spec(samples=2.0), False),
            ("cf-test-user-1", "cf-req-bad", "samples", self.spec(samples=True), False),
            ("cf-test-user-1", "cf-req-bad", "samples", self.spec(width=0), False),
            ("cf-test-user-1", "cf-req-bad", "samples", self.spec(height=-1), False),
            ("cf-test-user-1", "cf-req-bad", "samples", self.spec(advanced_model=1), False),
            ("cf-test-user-1", "cf-req-bad", "samples", self.spec(requests_in_flight=-1), False),
            ("cf-test-user-1", "cf-req-bad", "samples", self.spec(requests_in_flight="2"), False),
            ("cf-test-user-1", "cf-req-bad", "samples", self.spec(requests_in_flight=1.0), False),
            ("cf-test-user-1", "cf-req-bad", "samples", self.spec(requests_in_flight=True), False),
            ("cf-test-user-1", "cf-req-bad", "samples", self.spec(requests_in_flight=None), False),
            ("cf-test-user-1", "cf-req-bad", "samples", spec, 12),
        ]
        for args in cases:
            with self.subTest(args=args):
                result = self.service.debit(*args)
                self.assertEqual(result["ok"], False)
                self.assertEqual(result["code"], "invalid_request")
                self.assertIsInstance(result["detail"], str)
        self.assertFalse(self.entries_of("cf-req-bad"))
        self.assertEqual(self.account.balance, 500)

    def test_at_the_cap_of_unfinished_requests_a_new_request_is_refused(self):
        # the test tier allows 3 unfinished requests
        result = self.service.debit(
            "cf-test-user-1", "cf-req-cap", "samples", self.spec(requests_in_flight=3)
        )
        self.assertEqual(
            {key: value for key, value in result.items() if key != "detail"},
            {
                "ok": False,
                "code": "tier_forbids",
                "reason": "too_many_requests_in_flight",
                "tier": "cf-test-limited",
                "requests_in_flight": 3,
                "max_requests_in_flight": 3,
            },
        )
        self.assertIsInstance(result["detail"], str)
        self.assertFalse(self.entries_of("cf-req-cap"))
        self.assertEqual(self.account.balance, 500)

    def test_below_the_cap_or_without_the_key_a_new_request_is_debited(self):
        for index, overrides in enumerate(({"requests_in_flight": 2}, {})):
            with self.subTest(spec=overrides):
                result = self.service.debit(
                    "cf-test-user-1", f"cf-req-below-{index}", "samples", self.spec(**overrides)
                )
                self.assertEqual(result["code"], "debited")

    def test_the_cap_applies_to_new_requests_only(self):
        for action in ("final", "final-2", "regeneration-1"):
            with self.subTest(action=action):
                result = self.service.debit(
                    "cf-test-user-1", "cf-req-later", action, self.spec(requests_in_flight=9)
                )
                self.assertEqual(result["code"], "debited")

    def test_the_cap_comes_before_the_balance(self):
        result = self.service.debit(
            "cf-test-user-poor", "cf-req-poor-cap", "samples", self.spec(requests_in_flight=3)
        )
        self.assertEqual(result["reason"], "too_many_requests_in_flight")

    def test_a_replay_ignores_the_cap(self):
        first = self.service.debit(
            "cf-test-user-1", "cf-req-cap-replay", "samples", self.spec(requests_in_flight=0)
        )
        again = self.service.debit(
            "cf-test-user-1", "cf-req-cap-replay", "samples", self.spec(requests_in_flight=7)
        )
        self.assertTrue(again["replay"])
        self.assertEqual(again["entry_id"], first["entry_id"])
        self.assertEqual(self.account.balance, 500 - first["amount"])

    def test_debit_results_never_hold_none(self):
        results = [
            self.service.debit("cf-test-user-1", "cf-req-none", "samples", self.spec()),
            self.service.debit("cf-test-user-1", "cf-req-none", "samples", self.spec()),
            self.service.debit("cf-test-user-poor", "cf-req-none-2", "samples", self.spec()),
            self.service.debit("cf-test-user-1", "cf-req-none-3", "samples", None),
        ]
        for result in results:
            self.assertNoNone(result)


@tagged("post_install", "-at_install")
class TestRefund(CreditsCase):
    def test_a_refund_gives_back_exactly_the_debit(self):
        debit = self.service.debit("cf-test-user-1", "cf-req-r1", "samples", self.spec(samples=3))
        result = self.service.refund("cf-req-r1", "samples", "generation failed", "corr-r1")
        refund = self.Ledger.browse(result["entry_id"])
        self.assertEqual(
            result,
            {
                "ok": True,
                "code": "refunded",
                "replay": False,
                "entry_id": refund.id,
                "user_id": "cf-test-user-1",
                "request_id": "cf-req-r1",
                "action": "samples",
                "amount": debit["amount"],
                "balance_after": 500,
            },
        )
        self.assertEqual(refund.operation, "refund")
        self.assertEqual(refund.reason, "generation failed")
        self.assertEqual(refund.correlation_id, "corr-r1")
        self.assertEqual(self.account.balance, 500)

    def test_a_repeated_refund_is_a_replay(self):
        self.service.debit("cf-test-user-1", "cf-req-r2", "final", self.spec())
        first = self.service.refund("cf-req-r2", "final", "upscale failed")
        second = self.service.refund("cf-req-r2", "final", "upscale failed again")
        self.assertTrue(second["replay"])
        self.assertEqual({**second, "replay": False}, first)
        self.assertEqual(self.entries_of("cf-req-r2").mapped("operation"), ["debit", "refund"])
        self.assertEqual(self.account.balance, 500)

    def test_nothing_to_refund(self):
        self.service.debit("cf-test-user-1", "cf-req-r3", "samples", self.spec())
        for request_id, action in (("cf-req-never", "samples"), ("cf-req-r3", "final")):
            with self.subTest(request_id=request_id, action=action):
                result = self.service.refund(request_id, action, "nothing happened")
                self.assertEqual(result, {"ok": False, "code": "nothing_to_refund"})
        self.assertEqual(self.account.balance, 492)

    def test_a_refused_debit_leaves_nothing_to_refund(self):
        self.service.debit("cf-test-user-poor", "cf-req-r4", "samples", self.spec())
        result = self.service.refund("cf-req-r4", "samples", "refused anyway")
        self.assertEqual(result["code"], "nothing_to_refund")

    def test_bad_refund_arguments_are_invalid_requests(self):
        cases = [
            ("", "samples", "why"),
            (None, "samples", "why"),
            ("cf-req-r5", "everything", "why"),
            ("cf-req-r5", "samples", None),
            ("cf-req-r5", "samples", 3),
        ]
        for args in cases:
            with self.subTest(args=args):
                result = self.service.refund(*args)
                self.assertEqual(result["code"], "invalid_request")
                self.assertIsInstance(result["detail"], str)
        result = self.service.refund("cf-req-r5", "samples", "why", ["not", "a", "string"])
        self.assertEqual(result["code"], "invalid_request")


@tagged("post_install", "-at_install")
class TestLedgerLookups(CreditsCase):
    def debit_and_refund(self):
        self.service.debit("cf-test-user-1", "cf-req-l1", "samples", self.spec(), "corr-l1")
        self.service.debit("cf-test-user-2", "cf-req-l2", "samples", self.spec(samples=1))
        self.service.debit("cf-test-user-1", "cf-req-l1", "final", self.spec())
        self.service.refund("cf-req-l1", "final", "final render failed", "corr-l1")

    def test_ledger_by_requests_returns_their_entries_in_id_order(self):
        self.debit_and_refund()
        result = self.service.ledger_by_requests(["cf-req-l1", "cf-req-l2", "cf-req-none"])
        self.assertTrue(result["ok"])
        self.assertEqual(result["code"], "ok")
        entries = result["entries"]
        self.assertEqual(
            [(e["request_id"], e["action"], e["operation"]) for e in entries],
            [
                ("cf-req-l1", "samples", "debit"),
                ("cf-req-l2", "samples", "debit"),
                ("cf-req-l1", "final", "debit"),
                ("cf-req-l1", "final", "refund"),
            ],
        )
        self.assertEqual([e["id"] for e in entries], sorted(e["id"] for e in entries))
        for entry in entries:
            self.assertEqual(set(entry), ENTRY_KEYS)
            self.assertRegex(entry["created_at"], TIMESTAMP)
        self.assertEqual(entries[0]["user_id"], "cf-test-user-1")
        self.assertEqual(entries[0]["amount"], 8)
        self.assertEqual(entries[0]["balance_after"], 492)
        self.assertEqual(entries[0]["correlation_id"], "corr-l1")
        self.assertIs(entries[0]["reason"], False)
        self.assertEqual(entries[3]["reason"], "final render failed")
        self.assertIs(entries[1]["correlation_id"], False)
        self.assertNoNone(result)

    def test_ledger_by_requests_with_no_ids(self):
        self.assertEqual(
            self.service.ledger_by_requests([]), {"ok": True, "code": "ok", "entries": []}
        )

    def test_ledger_by_requests_refuses_bad_arguments(self):
        cases = ["cf-req-l1", None, ["cf-req-l1", 3], [f"cf-req-{n}" for n in range(501)]]
        for request_ids in cases:
            with self.subTest(request_ids=str(request_ids)[:40]):
                result = self.service.ledger_by_requests(request_ids)
                self.assertEqual(result["code"], "invalid_request")
                self.assertIsInstance(result["detail"], str)
        accepted = self.service.ledger_by_requests([f"cf-req-{n}" for n in range(500)])
        self.assertTrue(accepted["ok"])

    def window(self, days_before=1, days_after=1):
        now = self.env.cr.now()
        return (
            (now - timedelta(days=days_before)).strftime("%Y-%m-%d %H:%M:%S"),
            (now + timedelta(days=days_after)).strftime("%Y-%m-%d %H:%M:%S"),
        )

    def test_ledger_window_returns_the_entries_written_in_it(self):
        self.debit_and_refund()
        mine = set(self.Ledger.search([("request_id", "in", ["cf-req-l1", "cf-req-l2"])]).ids)
        since, until = self.window()
        result = self.service.ledger_window(since, until)
        self.assertEqual(result["code"], "ok")
        self.assertFalse(result["has_more"])
        ids = [entry["id"] for entry in result["entries"]]
        self.assertTrue(mine <= set(ids))
        self.assertEqual(ids, sorted(ids))
        for entry in result["entries"]:
            self.assertEqual(set(entry), ENTRY_KEYS)
            self.assertTrue(since <= entry["created_at"] < until)
        self.assertNoNone(result)

    def test_ledger_window_pages_with_limit_and_offset(self):
        self.debit_and_refund()
        since, until = self.window()
        first = self.service.ledger_window(since, until, limit=1)
        self.assertEqual(len(first["entries"]), 1)
        self.assertTrue(first["has_more"])
        seen, offset = [], 0
        for _page in range(1000):
            page = self.service.ledger_window(since, until, 2, offset)
            seen += [entry["id"] for entry in page["entries"]]
            offset += 2
            if not page["has_more"]:
                break
        everything = self.service.ledger_window(since, until)
        self.assertEqual(seen, [entry["id"] for entry in everything["entries"]])

    def test_ledger_window_is_half_open(self):
        self.debit_and_refund()
        entry = self.entries_of("cf-req-l2")
        created = entry.create_date.replace(microsecond=0)

        def window_ids(since, until):
            result = self.service.ledger_window(
                since.strftime("%Y-%m-%d %H:%M:%S"), until.strftime("%Y-%m-%d %H:%M:%S")
            )
            return [found["id"] for found in result["entries"]]

        second = timedelta(seconds=1)
        self.assertIn(entry.id, window_ids(created, created + second))
        self.assertNotIn(entry.id, window_ids(created - second, created))
        self.assertNotIn(entry.id, window_ids(created + second, created + 2 * second))
        self.assertEqual(window_ids(created, created), [])
        past = self.service.ledger_window("2000-01-01 00:00:00", "2000-01-02 00:00:00")
        self.assertEqual(past, {"ok": True, "code": "ok", "entries": [], "has_more": False})

    def test_ledger_window_refuses_bad_arguments(self):
        since, until = self.window()
        cases = [
            ("2026-11-21", until, 1000, 0),
            ("2026-11-21T13:04:29", until, 1000, 0),
            ("yesterday", until, 1000, 0),
            (None, until, 1000, 0),
            (since, 20261121, 1000, 0),
            (until, since, 1000, 0),
            (since, until, 0, 0),
            (since, until, 1001, 0),
            (since, until, "10", 0),
            (since, until, True, 0),
            (since, until, 10, -1),
            (since, until, 10, None),
        ]
        for args in cases:
            with self.subTest(args=args):
                result = self.service.ledger_window(*args)
                self.assertEqual(result["code"], "invalid_request")
                self.assertIsInstance(result["detail"], str)


@tagged("post_install", "-at_install")
class TestServiceAccess(CreditsCase):
    def test_callers_without_the_orchestrator_group_get_access_error(self):
        calls = [
            ("get_entitlements", ("cf-test-user-1",)),
            ("debit", ("cf-test-user-1", "cf-req-a1", "samples", self.spec())),
            ("refund", ("cf-req-a1", "samples", "why")),
            ("ledger_by_requests", (["cf-req-a1"],)),
            ("ledger_window", ("2000-01-01 00:00:00", "2100-01-01 00:00:00")),
        ]
        for user in (self.auditor, self.manager):
            service = self.env["creativeflow.credit.service"].with_user(user)
            for method, args in calls:
                with self.subTest(user=user.login, method=method), self.assertRaises(AccessError):
                    getattr(service, method)(*args)
        self.assertFalse(self.entries_of("cf-req-a1"))
        self.assertEqual(self.account.balance, 500)

    def test_the_orchestrator_changes_nothing_outside_the_service(self):
        # Least privilege: no access rights at all; the service works in sudo.
        with self.assertRaises(AccessError):
            self.account.with_user(self.orchestrator).write({"partner_id": False})
        with self.assertRaises(AccessError):
            self.env["creativeflow.credit.account"].with_user(self.orchestrator).create(
                {"platform_user_id": "cf-test-forged", "tier_id": self.tier.id}
            )
        with self.assertRaises(UserError):
            self.Ledger.with_user(self.orchestrator).create(
                {
                    "account_id": self.account.id,
                    "request_id": "cf-req-forged",
                    "action": "samples",
                    "operation": "refund",
                    "amount": 1000,
                    "balance_after": 1500,
                }
            )
        # ... nor reads them: balances come through get_entitlements only
        with self.assertRaises(AccessError):
            self.account.with_user(self.orchestrator).read(["balance"])
        self.assertEqual(self.service.get_entitlements("cf-test-user-1")["balance"], 500)

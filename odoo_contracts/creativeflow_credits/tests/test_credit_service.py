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
    "model",
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
                    "models": ["creativeflow-standard-v1", "creativeflow-draft-v1"],
                    "default_model": "creativeflow-standard-v1",
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
                "model": "creativeflow-standard-v1",
            },
        )
        self.assertEqual(self.account.balance, 492)
        self.assertEqual(entry.model_id, self.standard_model)
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
                    if "model" in case:
                        self.assertEqual(result["model"], case["model"])
                        self.assertEqual(self.entries_of(request_id).model_id.code, case["model"])

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
            ("cf-test-user-1", "cf-req-bad", "samples", self.spec(model=True), False),
            ("cf-test-user-1", "cf-req-bad", "samples", self.spec(model=None), False),
            ("cf-test-user-1", "cf-req-bad", "samples", self.spec(model=""), False),
            ("cf-test-user-1", "cf-req-bad", "samples", self.spec(model=7), False),
            ("cf-test-user-1", "cf-req-bad", "samples", self.spec(model="Standard"), False),
            ("cf-test-user-1", "cf-req-bad", "samples", self.spec(model="std\n"), False),
            ("cf-test-user-1", "cf-req-bad", "samples", self.spec(model="a" * 65), False),
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
                "model": "creativeflow-standard-v1",
            },
        )
        self.assertEqual(refund.model_id, self.standard_model)
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
class TestQuote(CreditsCase):
    def assertAllowed(self, result):
        self.assertIs(result["allowed"], True)
        self.assertIs(result["reason"], False)
        self.assertIs(result["detail"], False)
        self.assertNotIn("requests_in_flight", result)
        self.assertNotIn("max_requests_in_flight", result)

    def test_quote_prices_a_new_request_and_allows_it(self):
        result = self.service.quote("cf-test-user-1", self.spec(samples=3))
        self.assertEqual(
            result,
            {
                "ok": True,
                "code": "quoted",
                "user_id": "cf-test-user-1",
                "tier": "cf-test-limited",
                "allowed": True,
                "reason": False,
                "detail": False,
                "model": "creativeflow-standard-v1",
                "models": ["creativeflow-standard-v1", "creativeflow-draft-v1"],
                "default_model": "creativeflow-standard-v1",
                "prices": {"samples": 6, "final": 10, "regeneration": 3},
                "balance": 500,
                "affordable": True,
            },
        )
        self.assertAllowed(result)
        self.assertIs(result["affordable"], True)

    def test_quote_prices_are_what_debit_takes(self):
        spec = self.spec(samples=2)
        prices = self.service.quote("cf-test-user-1", spec)["prices"]
        taken = {
            key: self.service.debit("cf-test-user-1", "cf-req-q-price", action, spec)["amount"]
            for key, action in (
                ("samples", "samples"),
                ("final", "final"),
                ("regeneration", "regeneration-1"),
            )
        }
        self.assertEqual(prices, taken)
        self.assertEqual(prices, {"samples": 4, "final": 10, "regeneration": 2})

    def test_quote_prices_whatever_the_tier_says(self):
        # the final asset has one price whatever the samples; a refused spec is still priced
        result = self.service.quote("cf-test-user-1", self.spec(samples=9))
        self.assertIs(result["allowed"], False)
        self.assertEqual(result["reason"], "too_many_samples")
        self.assertEqual(result["prices"], {"samples": 18, "final": 10, "regeneration": 9})

    def test_quote_gives_each_tier_refusal_as_not_allowed(self):
        cases = [
            ({"format": "gif"}, "format_not_allowed"),
            ({"width": 2049}, "resolution_not_allowed"),
            ({"height": 4096}, "resolution_not_allowed"),
            ({"samples": 5}, "too_many_samples"),
            ({"model": "creativeflow-advanced-v1"}, "model_not_allowed"),
            ({"advanced_model": True}, "model_not_allowed"),
            ({"requests_in_flight": 3}, "too_many_requests_in_flight"),
        ]
        for overrides, reason in cases:
            with self.subTest(spec=overrides):
                result = self.service.quote("cf-test-user-1", self.spec(**overrides))
                self.assertIs(result["ok"], True)
                self.assertEqual(result["code"], "quoted")
                self.assertIs(result["allowed"], False)
                self.assertEqual(result["reason"], reason)
                self.assertIsInstance(result["detail"], str)
                self.assertEqual(result["tier"], "cf-test-limited")
                self.assertEqual(result["balance"], 500)
                self.assertNoNone(result)

    def test_a_refused_format_is_the_refusal_debit_gives(self):
        spec = self.spec(format="gif")
        result = self.service.quote("cf-test-user-1", spec)
        debit = self.service.debit("cf-test-user-1", "cf-req-q-gif", "samples", spec)
        self.assertEqual(debit["code"], "tier_forbids")
        self.assertEqual((result["reason"], result["detail"]), (debit["reason"], debit["detail"]))
        self.assertNotIn("requests_in_flight", result)

    def test_quote_agrees_with_the_shared_rule_table_for_new_requests(self):
        for case in TIER_RULES["cases"]:
            if case["action"] != "samples":
                continue
            with self.subTest(case=case["name"]):
                result = self.service.quote("cf-test-user-1", self.spec(**case["spec"]))
                if "reason" in case:
                    self.assertIs(result["allowed"], False)
                    self.assertEqual(result["reason"], case["reason"])
                else:
                    self.assertAllowed(result)
                    self.assertEqual(result["prices"]["samples"], case["amount"])

    def test_at_the_cap_of_unfinished_requests_the_quote_carries_the_figures(self):
        result = self.service.quote("cf-test-user-1", self.spec(requests_in_flight=3))
        self.assertIs(result["allowed"], False)
        self.assertEqual(result["reason"], "too_many_requests_in_flight")
        self.assertIsInstance(result["detail"], str)
        self.assertEqual(result["requests_in_flight"], 3)
        self.assertEqual(result["max_requests_in_flight"], 3)
        self.assertEqual(result["prices"], {"samples": 8, "final": 10, "regeneration": 4})
        self.assertIs(result["affordable"], True)
        debit = self.service.debit(
            "cf-test-user-1", "cf-req-q-cap", "samples", self.spec(requests_in_flight=3)
        )
        self.assertEqual(
            (result["detail"], result["requests_in_flight"], result["max_requests_in_flight"]),
            (debit["detail"], debit["requests_in_flight"], debit["max_requests_in_flight"]),
        )

    def test_below_the_cap_or_without_the_key_the_quote_allows(self):
        for overrides in ({"requests_in_flight": 2}, {"requests_in_flight": 0}, {}):
            with self.subTest(spec=overrides):
                self.assertAllowed(self.service.quote("cf-test-user-1", self.spec(**overrides)))

    def test_a_poor_account_cannot_afford_what_the_tier_allows(self):
        result = self.service.quote("cf-test-user-poor", self.spec(samples=4))
        self.assertAllowed(result)
        self.assertEqual(result["balance"], 5)
        self.assertEqual(result["prices"]["samples"], 8)
        self.assertIs(result["affordable"], False)
        self.assertIs(
            self.service.quote("cf-test-user-poor", self.spec(samples=2))["affordable"], True
        )

    def test_a_balance_equal_to_the_price_is_affordable(self):
        self.service.debit(
            "cf-test-user-poor", "cf-req-q-even", "regeneration-1", self.spec(samples=1)
        )
        result = self.service.quote("cf-test-user-poor", self.spec(samples=2))
        self.assertEqual((result["balance"], result["prices"]["samples"]), (4, 4))
        self.assertIs(result["affordable"], True)

    def test_a_refused_spec_still_says_whether_it_is_affordable(self):
        result = self.service.quote(
            "cf-test-user-poor", self.spec(format="gif", requests_in_flight=3)
        )
        self.assertEqual(result["reason"], "format_not_allowed")
        self.assertNotIn("requests_in_flight", result)
        self.assertIs(result["affordable"], False)

    def test_quote_of_an_unknown_account(self):
        result = self.service.quote("cf-test-nobody", self.spec())
        self.assertEqual(result, {"ok": False, "code": "unknown_account"})

    def test_quote_refuses_what_debit_refuses_with_the_same_detail(self):
        spec = self.spec()
        without_samples = {key: value for key, value in spec.items() if key != "samples"}
        cases = [
            ("", spec),
            ("   ", spec),
            (7, spec),
            (None, spec),
            ("cf-test-user-1", None),
            ("cf-test-user-1", [spec]),
            ("cf-test-user-1", without_samples),
            ("cf-test-user-1", self.spec(format="")),
            ("cf-test-user-1", self.spec(width=0)),
            ("cf-test-user-1", self.spec(samples="4")),
            ("cf-test-user-1", self.spec(samples=True)),
            ("cf-test-user-1", self.spec(advanced_model=1)),
            ("cf-test-user-1", self.spec(model=None)),
            ("cf-test-user-1", self.spec(model="Not A Code")),
            ("cf-test-user-1", self.spec(requests_in_flight=-1)),
            ("cf-test-user-1", self.spec(requests_in_flight=True)),
            ("cf-test-user-1", self.spec(requests_in_flight=None)),
            ("cf-test-user-1", self.spec(requests_in_flight=1.0)),
        ]
        for platform_user_id, bad_spec in cases:
            with self.subTest(platform_user_id=platform_user_id, spec=bad_spec):
                result = self.service.quote(platform_user_id, bad_spec)
                self.assertEqual(result["ok"], False)
                self.assertEqual(result["code"], "invalid_request")
                self.assertIsInstance(result["detail"], str)
                debit = self.service.debit(platform_user_id, "cf-req-q-bad", "samples", bad_spec)
                self.assertEqual(result, debit)
        self.assertFalse(self.entries_of("cf-req-q-bad"))

    def test_quote_writes_nothing_and_leaves_the_balance(self):
        entries = self.Ledger.search_count([])
        for user_id, spec in (
            ("cf-test-user-1", self.spec()),
            ("cf-test-user-1", self.spec(format="gif")),
            ("cf-test-user-1", self.spec(requests_in_flight=3)),
            ("cf-test-user-poor", self.spec()),
            ("cf-test-nobody", self.spec()),
            ("cf-test-user-1", None),
        ):
            with self.subTest(user_id=user_id, spec=spec):
                self.service.quote(user_id, spec)
        self.env.flush_all()
        self.assertEqual(self.Ledger.search_count([]), entries)
        self.assertEqual(self.account.balance, 500)
        self.assertEqual(self.poor_account.balance, 5)

    def test_quote_results_never_hold_none(self):
        results = [
            self.service.quote("cf-test-user-1", self.spec()),
            self.service.quote("cf-test-user-1", self.spec(format="gif")),
            self.service.quote("cf-test-user-1", self.spec(requests_in_flight=3)),
            self.service.quote("cf-test-user-poor", self.spec()),
            self.service.quote("cf-test-nobody", self.spec()),
            self.service.quote("cf-test-user-1", None),
            self.service.quote(None, self.spec()),
        ]
        for result in results:
            self.assertNoNone(result)


@tagged("post_install", "-at_install")
class TestLedgerForUser(CreditsCase):
    def history(self):
        """After the opening adjustment of each account (CreditsCase): a debit of samples, one
        of the other account, a debit of the final asset, its refund and a manager's
        correction."""
        self.service.debit("cf-test-user-1", "cf-req-h1", "samples", self.spec(), "corr-h1")
        self.service.debit("cf-test-user-2", "cf-req-h2", "samples", self.spec(samples=1))
        self.service.debit("cf-test-user-1", "cf-req-h1", "final", self.spec())
        self.service.refund("cf-req-h1", "final", "final render failed", "corr-h1")
        self.account.with_user(self.manager).action_adjust(-3, "Goodwill correction")

    def ids_of(self, result):
        return [entry["id"] for entry in result["entries"]]

    def test_ledger_for_user_gives_the_accounts_entries_newest_first(self):
        self.history()
        result = self.service.ledger_for_user("cf-test-user-1")
        self.assertIs(result["ok"], True)
        self.assertEqual(result["code"], "ok")
        self.assertIs(result["has_more"], False)
        entries = result["entries"]
        self.assertEqual(
            [(e["operation"], e["request_id"], e["action"], e["amount"]) for e in entries],
            [
                ("adjustment", False, False, -3),
                ("refund", "cf-req-h1", "final", 10),
                ("debit", "cf-req-h1", "final", 10),
                ("debit", "cf-req-h1", "samples", 8),
                ("adjustment", False, False, 500),
            ],
        )
        self.assertEqual([e["balance_after"] for e in entries], [489, 492, 482, 492, 500])
        self.assertEqual(self.ids_of(result), sorted(self.ids_of(result), reverse=True))
        for entry in entries:
            self.assertEqual(set(entry), ENTRY_KEYS)
            self.assertEqual(entry["user_id"], "cf-test-user-1")
            self.assertRegex(entry["created_at"], TIMESTAMP)
        self.assertEqual(entries[0]["reason"], "Goodwill correction")
        self.assertIs(entries[0]["correlation_id"], False)
        self.assertEqual(entries[1]["reason"], "final render failed")
        self.assertEqual(entries[1]["correlation_id"], "corr-h1")
        self.assertIs(entries[3]["reason"], False)
        self.assertEqual(entries[4]["reason"], "Opening balance")
        self.assertNoNone(result)

    def test_ledger_for_user_gives_only_that_accounts_entries(self):
        self.history()
        for account in (self.account, self.other_account, self.poor_account):
            with self.subTest(user=account.platform_user_id):
                result = self.service.ledger_for_user(account.platform_user_id, 100)
                own = self.Ledger.search([("account_id", "=", account.id)], order="id desc")
                self.assertEqual(self.ids_of(result), own.ids)
                self.assertEqual(
                    {entry["user_id"] for entry in result["entries"]}, {account.platform_user_id}
                )
        other = self.service.ledger_for_user("cf-test-user-2")["entries"]
        self.assertEqual(
            [(e["operation"], e["request_id"]) for e in other],
            [("debit", "cf-req-h2"), ("adjustment", False)],
        )

    def test_an_account_with_no_entries_has_an_empty_history(self):
        self.env["creativeflow.credit.account"].create(
            {"platform_user_id": "cf-test-user-empty", "tier_id": self.tier.id}
        )
        result = self.service.ledger_for_user("cf-test-user-empty")
        self.assertEqual(result, {"ok": True, "code": "ok", "entries": [], "has_more": False})

    def test_ledger_for_user_pages_with_limit_offset_and_has_more(self):
        self.history()
        everything = self.ids_of(self.service.ledger_for_user("cf-test-user-1"))
        self.assertEqual(len(everything), 5)
        first = self.service.ledger_for_user("cf-test-user-1", limit=2)
        self.assertEqual(self.ids_of(first), everything[:2])
        self.assertIs(first["has_more"], True)
        seen, offset = [], 0
        for _page in range(10):
            page = self.service.ledger_for_user("cf-test-user-1", 2, offset)
            seen += self.ids_of(page)
            offset += 2
            if not page["has_more"]:
                break
        self.assertEqual(seen, everything)
        self.assertEqual(offset, 6)
        exact = self.service.ledger_for_user("cf-test-user-1", limit=5)
        self.assertEqual((self.ids_of(exact), exact["has_more"]), (everything, False))
        last = self.service.ledger_for_user("cf-test-user-1", limit=4, offset=1)
        self.assertEqual((self.ids_of(last), last["has_more"]), (everything[1:], False))
        beyond = self.service.ledger_for_user("cf-test-user-1", offset=5)
        self.assertEqual(beyond, {"ok": True, "code": "ok", "entries": [], "has_more": False})

    def test_ledger_for_user_gives_twenty_entries_by_default(self):
        manager_account = self.account.with_user(self.manager)
        for number in range(24):
            manager_account.action_adjust(1, f"Bonus {number}")
        # 25 entries: the opening balance and 24 bonuses
        default = self.service.ledger_for_user("cf-test-user-1")
        self.assertEqual(len(default["entries"]), 20)
        self.assertIs(default["has_more"], True)
        self.assertEqual(default["entries"][0]["reason"], "Bonus 23")
        rest = self.service.ledger_for_user("cf-test-user-1", offset=20)
        self.assertEqual(len(rest["entries"]), 5)
        self.assertIs(rest["has_more"], False)
        self.assertEqual(rest["entries"][-1]["reason"], "Opening balance")
        largest = self.service.ledger_for_user("cf-test-user-1", 100)
        self.assertEqual(len(largest["entries"]), 25)
        self.assertIs(largest["has_more"], False)

    def test_ledger_for_user_of_an_unknown_account(self):
        result = self.service.ledger_for_user("cf-test-nobody")
        self.assertEqual(result, {"ok": False, "code": "unknown_account"})

    def test_ledger_for_user_refuses_bad_arguments(self):
        user_detail = "platform_user_id must be a non-empty string"
        limit_detail = "limit must be an integer from 1 to 100"
        offset_detail = "offset must be an integer >= 0"
        cases = [
            (("",), user_detail),
            (("   ",), user_detail),
            ((None,), user_detail),
            ((7,), user_detail),
            ((["cf-test-user-1"],), user_detail),
            (("cf-test-user-1", 0), limit_detail),
            (("cf-test-user-1", 101), limit_detail),
            (("cf-test-user-1", True), limit_detail),
            (("cf-test-user-1", "5"), limit_detail),
            (("cf-test-user-1", -1), limit_detail),
            (("cf-test-user-1", None), limit_detail),
            (("cf-test-user-1", 2.0), limit_detail),
            (("cf-test-user-1", 20, -1), offset_detail),
            (("cf-test-user-1", 20, "5"), offset_detail),
            (("cf-test-user-1", 20, True), offset_detail),
            (("cf-test-user-1", 20, None), offset_detail),
            (("cf-test-nobody", 0), limit_detail),
        ]
        for args, detail in cases:
            with self.subTest(args=args):
                result = self.service.ledger_for_user(*args)
                self.assertEqual(result, {"ok": False, "code": "invalid_request", "detail": detail})
        for limit in (1, 100):
            with self.subTest(limit=limit):
                self.assertIs(self.service.ledger_for_user("cf-test-user-1", limit)["ok"], True)

    def test_ledger_for_user_results_never_hold_none(self):
        self.history()
        results = [
            self.service.ledger_for_user("cf-test-user-1"),
            self.service.ledger_for_user("cf-test-user-2", 1, 1),
            self.service.ledger_for_user("cf-test-nobody"),
            self.service.ledger_for_user("cf-test-user-1", 0),
            self.service.ledger_for_user(None),
        ]
        for result in results:
            self.assertNoNone(result)


@tagged("post_install", "-at_install")
class TestServiceAccess(CreditsCase):
    def test_callers_without_the_orchestrator_group_get_access_error(self):
        calls = [
            ("get_entitlements", ("cf-test-user-1",)),
            ("debit", ("cf-test-user-1", "cf-req-a1", "samples", self.spec())),
            ("refund", ("cf-req-a1", "samples", "why")),
            ("ledger_by_requests", (["cf-req-a1"],)),
            ("ledger_window", ("2000-01-01 00:00:00", "2100-01-01 00:00:00")),
            ("quote", ("cf-test-user-1", self.spec())),
            ("ledger_for_user", ("cf-test-user-1",)),
            ("record_generated_asset", ({"request_id": "cf-req-a1"},)),
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

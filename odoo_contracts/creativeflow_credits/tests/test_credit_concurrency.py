# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0.html)
"""Concurrency safety, as far as one TransactionCase can show it.

Real concurrent transactions cannot run inside a TransactionCase, so these tests check the
mechanisms the safety rests on: every balance movement takes the account's row lock
(``SELECT ... FOR UPDATE``) before it reads the ledger or writes anything, and the database keeps
one entry per (request id, action, operation) whatever the code above it does
(see test_credit_ledger.TestLedgerUniqueness); recording a generated asset also rewrites the
locked row before it looks for the request's asset, and the database keeps one asset per request.
"""

from contextlib import contextmanager
from unittest.mock import patch

from odoo.sql_db import Cursor
from odoo.tests import tagged

from .common import CreditsCase

LOCK_QUERY = "select id from creativeflow_credit_account where id = %s for update"


def normalized(query):
    return " ".join(query.replace('"', "").lower().split())


@tagged("post_install", "-at_install")
class TestRowLocking(CreditsCase):
    @contextmanager
    def recorded_queries(self):
        """Record every query the cursor runs, as (normalized SQL, parameters)."""
        self.env.flush_all()
        queries = []
        real_execute = Cursor.execute

        def recording_execute(cr, query, params=None, log_exceptions=True):
            # The ORM passes odoo.tools.SQL objects; their text is in ``code``.
            queries.append((normalized(getattr(query, "code", query)), params))
            return real_execute(cr, query, params, log_exceptions)

        with patch.object(Cursor, "execute", recording_execute):
            yield queries

    def position(self, queries, predicate, what):
        for index, (query, params) in enumerate(queries):
            if predicate(query, params):
                return index
        self.fail(f"no query {what} among:\n" + "\n".join(query for query, _p in queries))

    def lock_position(self, queries, account):
        return self.position(
            queries,
            lambda query, params: query == LOCK_QUERY and list(params) == [account.id],
            f"locking account {account.id}",
        )

    def test_a_debit_locks_the_account_before_it_reads_the_ledger(self):
        with self.recorded_queries() as queries:
            result = self.service.debit("cf-test-user-1", "cf-req-lock", "samples", self.spec())
        self.assertEqual(result["code"], "debited")
        lock = self.lock_position(queries, self.account)
        first_ledger_query = self.position(
            queries,
            lambda query, params: "creativeflow_credit_ledger" in query,
            "on the ledger",
        )
        balance_update = self.position(
            queries,
            lambda query, params: query.startswith("update creativeflow_credit_account"),
            "moving the balance",
        )
        self.assertLess(lock, first_ledger_query, "the existing debit was looked up unlocked")
        self.assertLess(lock, balance_update, "the balance moved without the row lock")

    def test_a_replayed_or_refused_debit_takes_the_lock_too(self):
        self.service.debit("cf-test-user-1", "cf-req-lock-2", "samples", self.spec())
        for request_id, spec in (
            ("cf-req-lock-2", self.spec()),  # replay
            ("cf-req-lock-3", self.spec(format="gif")),  # tier refusal
        ):
            with self.subTest(request_id=request_id), self.recorded_queries() as queries:
                self.service.debit("cf-test-user-1", request_id, "samples", spec)
                self.lock_position(queries, self.account)

    def test_a_refund_locks_the_debited_account(self):
        self.service.debit("cf-test-user-2", "cf-req-lock-r", "final", self.spec())
        with self.recorded_queries() as queries:
            result = self.service.refund("cf-req-lock-r", "final", "failed")
        self.assertEqual(result["code"], "refunded")
        lock = self.lock_position(queries, self.other_account)
        balance_update = self.position(
            queries,
            lambda query, params: query.startswith("update creativeflow_credit_account"),
            "moving the balance",
        )
        ledger_insert = self.position(
            queries,
            lambda query, params: query.startswith("insert into creativeflow_credit_ledger"),
            "writing the refund",
        )
        self.assertLess(lock, balance_update)
        self.assertLess(lock, ledger_insert)

    def test_an_adjustment_locks_the_account(self):
        with self.recorded_queries() as queries:
            self.account.with_user(self.manager).action_adjust(5, "goodwill")
        lock = self.lock_position(queries, self.account)
        ledger_insert = self.position(
            queries,
            lambda query, params: query.startswith("insert into creativeflow_credit_ledger"),
            "writing the adjustment",
        )
        self.assertLess(lock, ledger_insert)

    def test_recording_an_asset_locks_and_rewrites_the_account_row_first(self):
        """Recordings of one account are serialized by the row lock; rewriting the locked row
        makes a waiting recording of the same request fail to serialize, so Odoo retries it
        with a fresh snapshot, where it finds the asset and replays it."""
        for action in ("samples", "final"):
            self.service.debit("cf-test-user-1", "cf-req-lock-asset", action, self.spec())
        asset = {
            "request_id": "cf-req-lock-asset",
            "platform_user_id": "cf-test-user-1",
            "storage_key": "assets/cf-req-lock-asset.png",
            "format": "png",
            "width": 512,
            "height": 512,
            "checksum_sha256": "0" * 64,
            "byte_size": 100,
            "debit_actions": ["samples", "final"],
        }
        for expected in (True, False):  # first the recording, then its replay
            with self.subTest(created=expected), self.recorded_queries() as queries:
                result = self.service.record_generated_asset(asset)
                self.assertEqual(result["created"], expected)
                lock = self.lock_position(queries, self.account)
                touch = self.position(
                    queries,
                    lambda query, params: (
                        query.startswith("update creativeflow_credit_account")
                        and params is not None
                        and list(params) == [self.account.id]
                    ),
                    "rewriting the locked row",
                )
                asset_query = self.position(
                    queries,
                    lambda query, params: "creativeflow_generated_asset" in query,
                    "on the generated assets",
                )
                self.assertLess(lock, touch)
                self.assertLess(touch, asset_query, "the asset was looked up before the rewrite")

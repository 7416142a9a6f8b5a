"""Reconciliation finds nothing after faults were recovered, and finds what is planted."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from creativeflow.domain.credits import GenerationSpec
from creativeflow.domain.model import CreditOperation
from creativeflow.domain.states import CreditOperationKind, CreditOperationStatus
from creativeflow.services.reconciliation import MismatchKind
from tests.faults.conftest import Rig
from tests.faults.test_saga_faults import A_SUBMIT, crash_submit
from tests.integration.rabbit_support import events_env

pytestmark = pytest.mark.asyncio

SPEC = GenerationSpec(format="png", width=512, height=512, samples=1)


def window(rig: Rig) -> tuple[datetime, datetime]:
    return rig.started - timedelta(minutes=1), datetime.now(UTC) + timedelta(minutes=1)


def kinds_for(report, request_id: str) -> set[MismatchKind]:  # type: ignore[no-untyped-def]
    return {m.kind for m in report.mismatches if m.request_id == request_id}


async def test_zero_mismatches_after_faults_are_recovered(rig: Rig) -> None:
    user = rig.new_user()
    for point in ("before_debit", "after_debit_applied", "before_publish", "after_publish"):
        await crash_submit(rig, user, point)
        rig.switch.fired.clear()
    await rig.container.generations.submit(user, A_SUBMIT, "c")
    await rig.recover()
    report = await rig.container.reconciler.reconcile(*window(rig))
    ours = {r.id for r in rig.requests_of(user)}
    assert [m for m in report.mismatches if m.request_id in ours] == []
    assert report.ledger_entries >= 1


async def test_a_debit_odoo_holds_for_an_unknown_request_is_reported(rig: Rig) -> None:
    user = rig.new_user()
    planted = str(uuid.uuid4())
    await rig.container.credits.debit(user, planted, "samples", SPEC, "planted")
    report = await rig.container.reconciler.reconcile(*window(rig))
    assert kinds_for(report, planted) == {
        MismatchKind.UNKNOWN_REQUEST,
        MismatchKind.DEBIT_WITHOUT_WORK_OR_REFUND,
    }
    assert not report.clean


async def test_a_journal_that_disagrees_with_odoo_is_reported(rig: Rig) -> None:
    user = rig.new_user()
    request = await rig.container.generations.submit(user, A_SUBMIT, "c")

    def tamper(repo) -> None:  # type: ignore[no-untyped-def]
        record = repo.load_record(request.id)
        record.debit("samples").amount = 999
        repo.save_record(record, datetime.now(UTC))

    await rig.container.db.run(tamper)
    report = await rig.container.reconciler.reconcile(*window(rig))
    assert kinds_for(report, request.id) == {MismatchKind.AMOUNT_MISMATCH}


async def test_a_refund_the_journal_claims_but_odoo_lacks_is_reported(rig: Rig) -> None:
    user = rig.new_user()
    request = await rig.container.generations.submit(user, A_SUBMIT, "c")

    def claim_a_refund(repo) -> None:  # type: ignore[no-untyped-def]
        repo.add_operation(
            CreditOperation(
                request_id=request.id,
                user_id=user,
                action="samples",
                kind=CreditOperationKind.REFUND,
                status=CreditOperationStatus.APPLIED,
                amount=4,
            ),
            datetime.now(UTC),
        )

    await rig.container.db.run(claim_a_refund)
    report = await rig.container.reconciler.reconcile(*window(rig))
    assert kinds_for(report, request.id) == {MismatchKind.JOURNAL_WITHOUT_LEDGER}


async def test_the_reconcile_command_exits_non_zero_on_a_planted_mismatch(rig: Rig) -> None:
    user = rig.new_user()
    await rig.container.credits.debit(user, str(uuid.uuid4()), "samples", SPEC, "planted")
    since, until = window(rig)
    env = {
        **os.environ,
        "DATABASE_URL": rig.settings.database_url,
        "ODOO_URL": rig.settings.odoo_url,
        "ODOO_DB": rig.settings.odoo_db,
        "ODOO_LOGIN": "orchestrator",
        "ODOO_PASSWORD": "orchestrator",
        "RABBITMQ_URL": rig.settings.rabbitmq_url,
        "RABBITMQ_GENERATION_EXCHANGE": rig.settings.rabbitmq_exchange,
        "RABBITMQ_N8N_JOB_QUEUE": rig.settings.rabbitmq_queue,
        "RABBITMQ_DEAD_LETTER_EXCHANGE": rig.settings.rabbitmq_dead_letter_exchange,
        "RABBITMQ_DEAD_LETTER_QUEUE": rig.settings.rabbitmq_dead_letter_queue,
        "RABBITMQ_N8N_CANCEL_QUEUE": rig.settings.rabbitmq_cancel_queue,
        **events_env(rig.settings),
        "ENVIRONMENT": "test",
        "LOG_LEVEL": "WARNING",
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "creativeflow",
            "reconcile",
            "--since",
            since.isoformat(),
            "--until",
            until.isoformat(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 1, done.stderr[-2000:]
    assert "debit_without_work_or_refund" in done.stdout

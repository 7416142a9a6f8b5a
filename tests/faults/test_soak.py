"""A soak: thousands of paid steps under random faults, then recovery, then every invariant.

Long, so not in the default run: ``scripts/test -m slow tests/faults/test_soak.py``
(``SOAK_REQUESTS`` sets the number of submits, 2000 by default; ``SOAK_SEED`` the random seed).
"""

from __future__ import annotations

import os
import random
import uuid
from collections import Counter

import pytest

from creativeflow.domain.errors import DomainError
from creativeflow.domain.jobs import CallbackEvent, FailureCategory
from creativeflow.domain.model import Failure, Sample
from creativeflow.services.callbacks import CallbackReport
from creativeflow.services.generations import SubmitGeneration
from tests.faults.conftest import Rig, SimulatedCrash

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]

FAULTS = [
    "none",
    "none",
    "none",
    "before_debit",
    "after_debit_applied",
    "before_publish",
    "after_publish",
    "lost_reply",
    "odoo_error",
    "platform_failure",
    "content_rejection",
    "refund_crash",
    "no_answer",
]


async def test_soak_with_random_faults(rig: Rig) -> None:
    total = int(os.environ.get("SOAK_REQUESTS", "2000"))
    rng = random.Random(int(os.environ.get("SOAK_SEED", "7")))
    users = [rig.new_user(balance=1_000_000) for _ in range(20)]
    outcomes: Counter[str] = Counter()
    for n in range(total):
        user = rng.choice(users)
        fault = rng.choice(FAULTS)
        outcomes[f"fault:{fault}"] += 1
        outcomes[await _one(rig, user, fault, n)] += 1
    await rig.recover()
    await rig.assert_invariants(users, dict.fromkeys(users, 1_000_000))
    ledger = [e for e in rig.emulator.ledger() if e["user_id"] in users]
    summary = {
        "submits": total,
        "ledger_entries": len(ledger),
        "debits": sum(e["operation"] == "debit" for e in ledger),
        "refunds": sum(e["operation"] == "refund" for e in ledger),
        **dict(sorted(outcomes.items())),
        "invariant_1_every_debit_backed_or_refunded": "held",
        "invariant_2_no_double_charge": "held",
        "invariant_4_nothing_transient_past_deadline": "held",
    }
    print("\nsoak summary:", summary)


async def _one(rig: Rig, user: str, fault: str, n: int) -> str:
    command = SubmitGeneration(prompt=f"soak {n}", format="png", width=512, height=512, samples=1)
    if fault in ("before_debit", "after_debit_applied", "before_publish", "after_publish"):
        rig.switch.point = fault
    elif fault == "lost_reply":
        rig.emulator.faults.lose_reply_next(2)
    elif fault == "odoo_error":
        rig.emulator.faults.fail_next(1, model_method="creativeflow.credit.service.debit")
    try:
        request = await rig.container.generations.submit(user, command, uuid.uuid4().hex)
    except SimulatedCrash:
        return "crashed"
    except DomainError as refused:
        return f"refused:{refused.status_code}"
    finally:
        rig.switch.point = None
        rig.emulator.faults.clear()
    job = rig.publisher.published[-1]
    if fault == "no_answer":
        return "left_to_the_deadline"
    event, failure = CallbackEvent.SAMPLES_READY, None
    if fault in ("platform_failure", "refund_crash"):
        event, failure = (
            CallbackEvent.FAILED,
            Failure(FailureCategory.PLATFORM, "provider_down", ""),
        )
    elif fault == "content_rejection":
        event, failure = CallbackEvent.FAILED, Failure(FailureCategory.CONTENT_POLICY, "policy", "")
    if fault == "refund_crash":
        rig.switch.point = "before_refund"
    try:
        await rig.container.callbacks.handle(
            CallbackReport(
                webhook_id=f"msg_{uuid.uuid4().hex}",
                event=event,
                job_id=job.job_id,
                request_id=request.id,
                samples=(Sample("s1", "https://assets.example/s1.png"),),
                failure=failure,
            )
        )
    except SimulatedCrash:
        return "callback_crashed"
    finally:
        rig.switch.point = None
    return "answered"

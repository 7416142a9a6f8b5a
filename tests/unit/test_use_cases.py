"""The saga's rules, use case by use case, on fakes of every port: the in-memory tracking store,
``FakeCredits`` (Odoo's contract in memory) and ``RecordingPublisher``. Every branch of a paid
step: paid and dispatched, refused, Odoo down, the reply lost (learnt from the ledger, or left to
recovery), the publish failed and compensated; then callbacks (applied, duplicate, replayed, late)
and each recovery rule. The real-database tiers prove the same on PostgreSQL, RabbitMQ and the
emulator; these prove the rules in a second."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from creativeflow.adapters.odoo.errors import OdooOutcomeUnknown, OdooUnavailable
from creativeflow.domain.credits import GenerationSpec
from creativeflow.domain.errors import (
    Conflict,
    CreditOutcomeUnknown,
    CreditServiceUnavailable,
    CreditsRefused,
    DispatchUnavailable,
)
from creativeflow.domain.jobs import CallbackEvent, FailureCategory
from creativeflow.domain.model import Failure, GenerationRequest, Sample
from creativeflow.domain.notifications import Notification
from creativeflow.domain.states import CreditOperationKind, CreditOperationStatus, JobStatus, Status
from creativeflow.services.account import CreditAccount
from creativeflow.services.callbacks import CallbackOutcome, CallbackReport, CallbackService
from creativeflow.services.flow import FlowConfig
from creativeflow.services.generations import GenerationService, SubmitGeneration
from creativeflow.services.idempotency import IdempotencyKey, StoredAnswer, fingerprint
from creativeflow.services.outbox import EventRelay
from creativeflow.services.reconciliation import MismatchKind, Reconciler
from creativeflow.services.recovery import Recovery
from creativeflow.services.refunds import Refunder
from creativeflow_devstack.fake_credits import FakeCredits
from tests.unit.fakes import InMemoryTracking, RecordingEventPublisher, RecordingPublisher

pytestmark = pytest.mark.asyncio

A_SUBMIT = SubmitGeneration(
    prompt="a quiet harbour", format="png", width=1024, height=1024, samples=2
)
USER = "u-1"
A_SUBMIT_SPEC = GenerationSpec(format="png", width=1024, height=1024, samples=2)


class Clock:
    def __init__(self) -> None:
        self.at = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.at

    def advance(self, by: timedelta) -> None:
        self.at += by


class Notifications:
    def __init__(self) -> None:
        self.sent: list[Notification] = []

    def send(self, notification: Notification) -> None:
        self.sent.append(notification)

    def types(self, request_id: str) -> list[str]:
        return [n.type.value for n in self.sent if n.request_id == request_id]


class World:
    """The use cases wired as the composition root wires them, on fakes."""

    def __init__(
        self, *, refund_on_system_failure: bool = True, model_selector: bool = True
    ) -> None:
        self.db = InMemoryTracking()
        self.clock = Clock()
        self.credits = FakeCredits(clock=self.clock.now)
        self.publisher = RecordingPublisher()
        self.notifier = Notifications()
        self.refunder = Refunder(self.db, self.credits, self.clock)
        self.event_publisher = RecordingEventPublisher()
        self.events = EventRelay(self.db, self.event_publisher, self.clock, batch=3)
        config = FlowConfig(
            callback_base_url="http://orchestrator.test",
            refund_on_system_failure=refund_on_system_failure,
            model_selector=model_selector,
        )
        self.generations = GenerationService(
            self.db, self.credits, self.publisher, self.clock, config, self.refunder, self.events
        )
        self.callbacks = CallbackService(
            self.db,
            self.refunder,
            self.notifier,
            self.clock,
            refund_on_system_failure=refund_on_system_failure,
            events=self.events,
        )
        self.recovery = Recovery(
            self.db,
            self.credits,
            self.refunder,
            self.notifier,
            self.clock,
            grace=timedelta(seconds=60),
            refund_on_system_failure=refund_on_system_failure,
            events=self.events,
        )
        self.reconciler = Reconciler(self.db, self.credits)
        self.account = CreditAccount(self.credits)
        self.credits.add_account(USER, tier="pro", balance=100)

    def ledger(self, request_id: str) -> list[tuple[str, str, int]]:
        return [
            (e.action or "", e.operation, e.amount)
            for e in self.credits.ledger()
            if e.request_id == request_id
        ]

    async def submit(self, **changes: object) -> str:
        command = A_SUBMIT if not changes else SubmitGeneration(**{**_fields(A_SUBMIT), **changes})
        return (await self.generations.submit(USER, command, uuid.uuid4().hex)).id

    async def callback(self, request_id: str, event: CallbackEvent, **fields: object) -> str:
        """n8n's callback, and the result events it made published (in the background)."""
        job = self.publisher.jobs_for(request_id)[-1]
        outcome = await self.callbacks.handle(
            CallbackReport(
                webhook_id=f"msg_{uuid.uuid4().hex}",
                event=event,
                job_id=job.job_id,
                request_id=request_id,
                **fields,  # type: ignore[arg-type]
            )
        )
        await self.events.settle()
        return outcome

    async def samples_arrive(self, request_id: str) -> None:
        samples = (Sample("s1", "https://assets.test/1.png"), Sample("s2", "https://a.test/2"))
        outcome = await self.callback(request_id, CallbackEvent.SAMPLES_READY, samples=samples)
        assert outcome is CallbackOutcome.APPLIED

    async def reconcile_clean(self) -> None:
        report = await self.reconciler.reconcile(
            self.clock.now() - timedelta(days=2), self.clock.now() + timedelta(days=2)
        )
        assert report.mismatches == []


def _fields(command: SubmitGeneration) -> dict[str, object]:
    return {name: getattr(command, name) for name in command.__dataclass_fields__}


@pytest.fixture
def world() -> World:
    return World()


# --- submit ---------------------------------------------------------------------------------


async def test_a_paid_submit_is_dispatched_in_two_transactions(world: World) -> None:
    request_id = await world.submit()
    request = world.db.request(request_id)
    assert request.status is Status.PROCESSING_SAMPLES
    assert world.ledger(request_id) == [("samples", "debit", 4)]
    assert [j.stage.value for j in world.publisher.jobs_for(request_id)] == ["samples"]
    assert world.credits.calls == ["debit"]
    assert world.db.transactions == 2
    [debit] = world.db.operations(request_id)
    assert (debit.status, debit.amount) == (CreditOperationStatus.APPLIED, 4)
    [job] = world.db.jobs(request_id)
    assert job.status is JobStatus.PUBLISHED
    await world.reconcile_clean()


async def test_a_refused_submit_is_refused_not_failed_and_moves_nothing(world: World) -> None:
    world.credits.add_account("poor", tier="pro", balance=1)
    with pytest.raises(CreditsRefused) as refused:
        await world.generations.submit("poor", A_SUBMIT, "c-1")
    assert refused.value.status_code == 402
    assert refused.value.public_extensions == {
        "code": "insufficient_credits",
        "required": 4,
        "balance": 1,
    }
    [request] = world.db.requests()
    assert request.status is Status.REFUSED
    assert request.failure == Failure(
        FailureCategory.CREDITS_REFUSED, "insufficient_credits", refused.value.public_detail
    )
    assert world.publisher.published == []
    [debit] = world.db.operations(request.id)
    assert (debit.status, debit.refusal_code) == (
        CreditOperationStatus.REFUSED,
        "insufficient_credits",
    )
    assert [j.status for j in world.db.jobs(request.id)] == [JobStatus.SUPERSEDED]


async def test_a_tier_refusal_names_its_rule(world: World) -> None:
    world.credits.add_account("free-user", tier="free", balance=100)
    command = SubmitGeneration(**{**_fields(A_SUBMIT), "format": "webp"})
    with pytest.raises(CreditsRefused) as refused:
        await world.generations.submit("free-user", command, "c-1")
    assert refused.value.status_code == 403
    assert refused.value.public_extensions["reason"] == "format_not_allowed"
    assert world.credits.balance("free-user") == 100


async def test_the_job_runs_on_the_model_odoo_grants_and_the_request_keeps_it(
    world: World,
) -> None:
    world.credits.add_account("studio-user", tier="studio", balance=100)  # default: advanced
    request = await world.generations.submit("studio-user", A_SUBMIT, "c-1")
    assert request.model == "creativeflow-advanced-v1"
    [message] = world.publisher.jobs_for(request.id)
    assert message.model == "creativeflow-advanced-v1"
    [stored] = world.db.jobs(request.id)
    assert stored.payload["model"] == "creativeflow-advanced-v1"
    assert world.db.request(request.id).model == "creativeflow-advanced-v1"
    # a later step asks Odoo for the granted model by name
    world.credits.fail_next("debit", OdooUnavailable("down"))
    await world.samples_arrive(request.id)
    with pytest.raises(CreditServiceUnavailable):
        await world.generations.regenerate("studio-user", request.id)
    assert [e.model for e in world.credits.ledger() if e.request_id == request.id] == [
        "creativeflow-advanced-v1"
    ]


async def test_a_named_model_is_asked_for_and_the_older_flag_asks_for_the_advanced_one(
    world: World,
) -> None:
    named = await world.submit(model="creativeflow-draft-v1")
    flagged = await world.submit(advanced_model=True)
    plain = await world.submit()
    models = [world.db.request(r).model for r in (named, flagged, plain)]
    assert models == [
        "creativeflow-draft-v1",
        "creativeflow-advanced-v1",
        "creativeflow-standard-v1",
    ]
    refused = SubmitGeneration(**{**_fields(A_SUBMIT), "model": "creativeflow-advanced-v1"})
    world.credits.add_account("free-user", tier="free", balance=100)
    with pytest.raises(CreditsRefused) as not_allowed:
        await world.generations.submit("free-user", refused, "c-1")
    assert not_allowed.value.public_extensions["reason"] == "model_not_allowed"
    assert world.credits.balance("free-user") == 100


async def test_with_the_selector_off_every_request_runs_on_its_tiers_default() -> None:
    world = World(model_selector=False)
    request_id = await world.submit(model="creativeflow-draft-v1")
    legacy = await world.submit(advanced_model=True)
    assert world.db.request(request_id).model == "creativeflow-standard-v1"
    assert world.db.request(legacy).model == "creativeflow-standard-v1"


async def test_a_debit_learnt_from_the_ledger_names_its_model(world: World) -> None:
    world.credits.fail_next("debit", OdooOutcomeUnknown("read timeout"), apply_first=True)
    request_id = await world.submit(model="creativeflow-draft-v1")
    [message] = world.publisher.jobs_for(request_id)
    assert message.model == "creativeflow-draft-v1"


async def test_odoo_down_at_submit_fails_the_request_and_charges_nothing(world: World) -> None:
    world.credits.fail_next("debit", OdooUnavailable("connection refused odoo:8069"))
    with pytest.raises(CreditServiceUnavailable):
        await world.submit()
    [request] = world.db.requests()
    assert request.status is Status.FAILED
    assert request.failure is not None and request.failure.category is FailureCategory.PLATFORM
    assert "odoo:8069" not in request.failure.message
    assert world.credits.balance(USER) == 100 and world.publisher.published == []


async def test_a_lost_debit_reply_is_learnt_from_the_ledger_and_the_job_goes_out(
    world: World,
) -> None:
    world.credits.fail_next("debit", OdooOutcomeUnknown("read timeout"), apply_first=True)
    request_id = await world.submit()
    assert world.db.request(request_id).status is Status.PROCESSING_SAMPLES
    assert world.credits.calls == ["debit", "ledger_by_requests"]
    assert world.ledger(request_id) == [("samples", "debit", 4)]
    assert len(world.publisher.jobs_for(request_id)) == 1


async def test_a_debit_whose_outcome_stays_unknown_is_left_to_recovery_which_refunds_it(
    world: World,
) -> None:
    world.credits.fail_next("debit", OdooOutcomeUnknown("read timeout"), apply_first=True)
    world.credits.fail_next("ledger_by_requests", OdooUnavailable("down"))
    with pytest.raises(CreditOutcomeUnknown):
        await world.submit()
    [request] = world.db.requests()
    assert request.status is Status.VALIDATING_CREDITS
    [debit] = world.db.operations(request.id)
    assert debit.status is CreditOperationStatus.UNKNOWN
    world.clock.advance(timedelta(minutes=5))
    report = await world.recovery.sweep()
    assert report.debits_settled == 1
    assert world.db.request(request.id).status is Status.FAILED
    assert world.ledger(request.id) == [("samples", "debit", 4), ("samples", "refund", 4)]
    assert world.publisher.published == []  # never dispatched late
    await world.reconcile_clean()


async def test_a_debit_that_never_landed_is_closed_by_recovery_with_no_refund(
    world: World,
) -> None:
    world.credits.fail_next("debit", OdooOutcomeUnknown("read timeout"))  # not applied
    world.credits.fail_next("ledger_by_requests", OdooUnavailable("down"))
    with pytest.raises(CreditOutcomeUnknown):
        await world.submit()
    world.clock.advance(timedelta(minutes=5))
    await world.recovery.sweep()
    [request] = world.db.requests()
    assert request.status is Status.FAILED
    [debit] = world.db.operations(request.id)
    assert (debit.status, debit.refusal_code) == (CreditOperationStatus.REFUSED, "not_applied")
    assert world.credits.ledger() == ()


async def test_a_failed_publish_is_refunded_before_the_answer(world: World) -> None:
    world.publisher.fail_next()
    with pytest.raises(DispatchUnavailable):
        await world.submit()
    [request] = world.db.requests()
    assert request.status is Status.FAILED
    assert world.ledger(request.id) == [("samples", "debit", 4), ("samples", "refund", 4)]
    assert world.credits.balance(USER) == 100
    assert [c.state.value for c in world.db.request(request.id).charges] == []  # not stored
    await world.reconcile_clean()


# --- selection, regeneration, cancel ----------------------------------------------------------


async def test_a_selection_pays_the_final_once_and_a_missing_sample_charges_nothing(
    world: World,
) -> None:
    request_id = await world.submit()
    await world.samples_arrive(request_id)
    with pytest.raises(Conflict):
        await world.generations.select(USER, request_id, "s9")
    selected = await world.generations.select(USER, request_id, "s2")
    assert selected.status is Status.PROCESSING_FINAL
    assert [(c.action, c.charged) for c in selected.charges] == [("samples", 4), ("final", 10)]
    assert world.ledger(request_id) == [("samples", "debit", 4), ("final", "debit", 10)]
    final_job = world.publisher.jobs_for(request_id)[-1]
    assert final_job.parameters["selected_sample"]["id"] == "s2"


async def test_a_regeneration_is_paid_under_its_own_action_and_clears_the_samples(
    world: World,
) -> None:
    request_id = await world.submit()
    await world.samples_arrive(request_id)
    again = await world.generations.regenerate(USER, request_id)
    assert (again.status, again.samples, again.regeneration_count) == (
        Status.PROCESSING_SAMPLES,
        [],
        1,
    )
    assert world.ledger(request_id)[-1] == ("regeneration-1", "debit", 2)


async def test_a_selection_after_a_refunded_final_is_paid_as_final_2(world: World) -> None:
    request_id = await world.submit()
    await world.samples_arrive(request_id)
    world.publisher.fail_next()
    with pytest.raises(DispatchUnavailable):
        await world.generations.select(USER, request_id, "s1")
    assert world.db.request(request_id).status is Status.AWAITING_SELECTION
    await world.generations.select(USER, request_id, "s1")
    assert [(a, op) for a, op, _ in world.ledger(request_id)] == [
        ("samples", "debit"),
        ("final", "debit"),
        ("final", "refund"),
        ("final-2", "debit"),
    ]
    await world.reconcile_clean()


async def test_cancel_awaiting_a_selection_refunds_nothing_and_cancel_twice_is_409(
    world: World,
) -> None:
    request_id = await world.submit()
    await world.samples_arrive(request_id)
    cancelled = await world.generations.cancel(USER, request_id)
    assert cancelled.status is Status.CANCELLED
    with pytest.raises(Conflict):
        await world.generations.cancel(USER, request_id)
    assert world.ledger(request_id) == [("samples", "debit", 4)]


async def test_cancel_while_samples_are_processing_refunds_them_and_tells_n8n(
    world: World,
) -> None:
    request_id = await world.submit()
    cancelled = await world.generations.cancel(USER, request_id)
    assert cancelled.status is Status.CANCELLED
    assert [(c.action, c.charged, c.refunded) for c in cancelled.charges] == [("samples", 4, 4)]
    assert world.ledger(request_id) == [("samples", "debit", 4), ("samples", "refund", 4)]
    assert world.credits.balance(USER) == 100
    [job] = world.publisher.jobs_for(request_id)
    [told] = world.publisher.cancelled
    assert (told.job_id, told.request_id, told.stage.value, told.action) == (
        job.job_id,
        request_id,
        "samples",
        "samples",
    )
    assert [j.status for j in world.db.jobs(request_id)] == [JobStatus.SUPERSEDED]
    await world.reconcile_clean()


async def test_a_result_after_a_cancel_is_late_and_changes_nothing(world: World) -> None:
    request_id = await world.submit()
    await world.generations.cancel(USER, request_id)
    samples = (Sample("s1", "https://assets.test/1.png"),)
    late = await world.callback(request_id, CallbackEvent.SAMPLES_READY, samples=samples)
    failed = await world.callback(
        request_id,
        CallbackEvent.FAILED,
        failure=Failure(FailureCategory.PLATFORM, "provider_unavailable", "down"),
    )
    assert (late, failed) == (CallbackOutcome.LATE, CallbackOutcome.LATE)
    request = world.db.request(request_id)
    assert (request.status, request.samples) == (Status.CANCELLED, [])
    assert world.ledger(request_id) == [("samples", "debit", 4), ("samples", "refund", 4)]


async def test_cancel_while_the_final_is_processing_refunds_the_final_only(world: World) -> None:
    request_id = await world.submit()
    await world.samples_arrive(request_id)
    await world.generations.select(USER, request_id, "s1")
    cancelled = await world.generations.cancel(USER, request_id)
    assert cancelled.status is Status.CANCELLED
    assert world.ledger(request_id) == [
        ("samples", "debit", 4),
        ("final", "debit", 10),
        ("final", "refund", 10),
    ]
    assert [c.stage.value for c in world.publisher.cancelled] == ["final"]
    await world.reconcile_clean()


async def test_a_cancel_refund_odoo_misses_is_made_by_recovery_once(world: World) -> None:
    request_id = await world.submit()
    world.credits.fail_next("refund", OdooUnavailable("connection refused odoo:8069"))
    cancelled = await world.generations.cancel(USER, request_id)
    assert cancelled.status is Status.CANCELLED
    assert world.ledger(request_id) == [("samples", "debit", 4)]
    world.clock.advance(timedelta(minutes=2))  # past recovery's grace
    await world.recovery.sweep()
    await world.recovery.sweep()
    assert world.ledger(request_id) == [("samples", "debit", 4), ("samples", "refund", 4)]
    assert world.credits.balance(USER) == 100


async def test_a_cancel_n8n_cannot_be_told_of_still_cancels_and_refunds(world: World) -> None:
    request_id = await world.submit()
    world.publisher.fail_next()
    cancelled = await world.generations.cancel(USER, request_id)
    assert cancelled.status is Status.CANCELLED
    assert world.publisher.cancelled == []
    assert world.ledger(request_id)[-1] == ("samples", "refund", 4)


async def test_cancel_while_a_step_is_being_paid_for_is_409_and_changes_nothing(
    world: World,
) -> None:
    request_id = await world.submit()
    await world.samples_arrive(request_id)
    world.credits.fail_next("debit", OdooOutcomeUnknown("read timeout"))
    world.credits.fail_next("ledger_by_requests", OdooUnavailable("down"))
    with pytest.raises(CreditOutcomeUnknown):
        await world.generations.regenerate(USER, request_id)
    with pytest.raises(Conflict):
        await world.generations.cancel(USER, request_id)
    assert world.db.request(request_id).status is Status.AWAITING_SELECTION
    assert world.publisher.cancelled == []


async def test_another_users_request_is_not_found(world: World) -> None:
    request_id = await world.submit()
    with pytest.raises(Exception) as missing:
        await world.generations.get("someone-else", request_id)
    assert type(missing.value).__name__ == "NotFound"


# --- idempotency ------------------------------------------------------------------------------


def _key(key: str, body: object) -> IdempotencyKey:
    return IdempotencyKey(
        user_id=USER,
        scope="submit",
        key=key,
        fingerprint=fingerprint("submit", body),
        ttl=timedelta(hours=24),
        render=lambda request: StoredAnswer(202, {"id": request.id, "status": request.status}),
        render_error=lambda error: StoredAnswer(error.status_code, {"code": error.title}),
    )


async def test_a_retried_submit_with_its_key_replays_the_first_answer_and_charges_once(
    world: World,
) -> None:
    first = await world.generations.submit(USER, A_SUBMIT, "c-1", _key("k-1", {"a": 1}))
    assert isinstance(first, GenerationRequest)
    replayed = await world.generations.submit(USER, A_SUBMIT, "c-2", _key("k-1", {"a": 1}))
    assert replayed == StoredAnswer(202, {"id": first.id, "status": "PROCESSING_SAMPLES"})
    assert world.credits.calls == ["debit"]
    assert len(world.db.requests()) == 1  # the retry's transaction was rolled back


# --- callbacks --------------------------------------------------------------------------------


async def test_samples_ready_awaits_a_selection_and_tells_the_user(world: World) -> None:
    request_id = await world.submit()
    await world.samples_arrive(request_id)
    assert world.db.request(request_id).status is Status.AWAITING_SELECTION
    assert world.notifier.types(request_id) == ["generation.samples_ready"]


async def test_a_duplicate_event_and_a_replayed_webhook_id_change_nothing(world: World) -> None:
    request_id = await world.submit()
    job = world.publisher.jobs_for(request_id)[-1]
    report = CallbackReport(
        webhook_id="msg_once",
        event=CallbackEvent.SAMPLES_READY,
        job_id=job.job_id,
        request_id=request_id,
        samples=(Sample("s1", "https://assets.test/1.png"),),
    )
    assert await world.callbacks.handle(report) is CallbackOutcome.APPLIED
    assert await world.callbacks.handle(report) is CallbackOutcome.REPLAYED
    again = CallbackReport(**{**_report_fields(report), "webhook_id": "msg_twice"})
    assert await world.callbacks.handle(again) is CallbackOutcome.DUPLICATE
    assert len(world.db.request(request_id).samples) == 1
    assert world.notifier.types(request_id) == ["generation.samples_ready"]


def _report_fields(report: CallbackReport) -> dict[str, object]:
    return {name: getattr(report, name) for name in CallbackReport.__dataclass_fields__}


async def test_a_platform_failure_is_refunded_once_and_a_content_rejection_never(
    world: World,
) -> None:
    failed = await world.submit()
    rejected = await world.submit(prompt="not allowed")
    platform = Failure(FailureCategory.PLATFORM, "provider_down", "the provider is down")
    content = Failure(FailureCategory.CONTENT_POLICY, "policy", "refused by policy")
    await world.callback(failed, CallbackEvent.FAILED, failure=platform)
    await world.callback(rejected, CallbackEvent.FAILED, failure=content)
    assert world.db.request(failed).status is Status.FAILED
    assert world.db.request(rejected).status is Status.CONTENT_REJECTED
    assert world.ledger(failed) == [("samples", "debit", 4), ("samples", "refund", 4)]
    assert world.ledger(rejected) == [("samples", "debit", 4)]
    assert "credits.refunded" in world.notifier.types(failed)
    await world.reconcile_clean()


async def test_with_the_toggle_off_a_platform_failure_keeps_its_debit() -> None:
    world = World(refund_on_system_failure=False)
    request_id = await world.submit()
    platform = Failure(FailureCategory.PLATFORM, "provider_down", "the provider is down")
    await world.callback(request_id, CallbackEvent.FAILED, failure=platform)
    assert world.ledger(request_id) == [("samples", "debit", 4)]
    await world.reconcile_clean()  # the debit backs dispatched work that failed


async def test_a_result_after_the_deadline_is_late_and_changes_nothing(world: World) -> None:
    request_id = await world.submit()
    world.clock.advance(timedelta(days=1))
    await world.recovery.sweep()
    assert world.db.request(request_id).status is Status.FAILED
    samples = (Sample("s1", "https://assets.test/1.png"),)
    outcome = await world.callback(request_id, CallbackEvent.SAMPLES_READY, samples=samples)
    assert outcome is CallbackOutcome.LATE
    assert world.db.request(request_id).samples == []
    assert world.ledger(request_id) == [("samples", "debit", 4), ("samples", "refund", 4)]


# --- recovery ---------------------------------------------------------------------------------


async def test_recovery_times_out_a_silent_job_and_refunds_it_or_not_as_the_toggle_says() -> None:
    for refunding in (True, False):
        world = World(refund_on_system_failure=refunding)
        request_id = await world.submit()
        world.clock.advance(timedelta(days=1))
        report = await world.recovery.sweep()
        assert report.requests_timed_out == 1
        request = world.db.request(request_id)
        assert request.failure is not None and request.failure.code == "timeout"
        refunds = [
            op for op in world.db.operations(request_id) if op.kind is CreditOperationKind.REFUND
        ]
        assert bool(refunds) is refunding
        assert world.credits.balance(USER) == (100 if refunding else 96)
        await world.reconcile_clean()


async def test_a_refund_odoo_missed_is_retried_by_the_next_sweep(world: World) -> None:
    request_id = await world.submit()
    world.credits.fail_next("refund", OdooUnavailable("down"))
    platform = Failure(FailureCategory.PLATFORM, "provider_down", "the provider is down")
    await world.callback(request_id, CallbackEvent.FAILED, failure=platform)
    assert world.credits.balance(USER) == 96  # the refund did not go through
    world.clock.advance(timedelta(minutes=5))
    report = await world.recovery.sweep()
    assert report.refunds_applied == 1
    assert world.credits.balance(USER) == 100
    second = await world.recovery.sweep()
    assert (second.refunds_applied, second.requests_timed_out) == (0, 0)


async def test_reconciliation_finds_a_debit_that_backs_no_work(world: World) -> None:
    request_id = await world.submit()
    await world.credits.debit(USER, request_id, "regeneration-1", A_SUBMIT_SPEC, "c-x")
    report = await world.reconciler.reconcile(
        world.clock.now() - timedelta(days=1), world.clock.now() + timedelta(days=1)
    )
    assert [(m.kind, m.action) for m in report.mismatches] == [
        (MismatchKind.DEBIT_WITHOUT_WORK_OR_REFUND, "regeneration-1")
    ]


async def test_the_sweep_purges_old_callbacks_and_expired_keys_and_says_so(world: World) -> None:
    request_id = await world.submit(prompt="keyed")
    await world.generations.submit(USER, A_SUBMIT, "c-1", _key("k-old", {"b": 2}))
    await world.samples_arrive(request_id)
    world.clock.advance(timedelta(days=8))
    report = await world.recovery.sweep()
    assert (report.callbacks_purged, report.keys_purged) == (1, 1)
    assert "callbacks purged: 1" in report.summary()
    assert "idempotency keys purged: 1" in report.summary()


# --- quote and credit history -----------------------------------------------------------------


async def test_a_quote_prices_every_step_in_one_odoo_call_and_charges_nothing(world: World) -> None:
    quote = await world.generations.quote(USER, A_SUBMIT)

    assert (quote.prices.samples, quote.prices.final, quote.prices.regeneration) == (4, 10, 2)
    assert (quote.allowed, quote.reason, quote.affordable, quote.balance) == (True, None, True, 100)
    assert quote.refusal() is None
    assert world.credits.calls == ["quote"]
    assert world.credits.ledger() == () and world.credits.balance(USER) == 100
    assert world.db.requests() == [] and world.publisher.published == []


async def test_a_quote_says_what_a_submit_would_be_refused_for(world: World) -> None:
    world.credits.add_account("free-user", tier="free", balance=100)
    world.credits.add_account("poor", tier="pro", balance=3)
    webp = SubmitGeneration(**{**_fields(A_SUBMIT), "format": "webp"})

    plan = await world.generations.quote("free-user", webp)
    balance = await world.generations.quote("poor", A_SUBMIT)

    assert (plan.allowed, plan.reason) == (False, "format_not_allowed")
    refused = plan.refusal()
    assert refused is not None and refused.status_code == 403
    assert (balance.allowed, balance.affordable) == (True, False)
    short = balance.refusal()
    assert short is not None and short.public_extensions == {
        "code": "insufficient_credits",
        "required": 4,
        "balance": 3,
    }


async def test_a_quote_counts_the_requests_in_flight_against_the_plans_cap(world: World) -> None:
    world.credits.add_account("free-user", tier="free", balance=100)  # at most 2 unfinished
    small = SubmitGeneration(**{**_fields(A_SUBMIT), "width": 512, "height": 512})
    for _ in range(2):
        await world.generations.submit("free-user", small, uuid.uuid4().hex)

    quote = await world.generations.quote("free-user", small)

    assert (quote.allowed, quote.reason) == (False, "too_many_requests_in_flight")
    assert quote.figures == {"requests_in_flight": 2, "max_requests_in_flight": 2}
    refused = quote.refusal()
    assert refused is not None and refused.status_code == 429


async def test_the_credit_history_is_the_users_own_ledger_newest_first(world: World) -> None:
    world.credits.add_account("other", tier="pro", balance=100)
    first = await world.submit()
    await world.generations.submit("other", A_SUBMIT, "c-other")
    second = await world.submit()

    page = await world.account.history(USER, limit=1, offset=0)
    rest = await world.account.history(USER, limit=20, offset=1)

    assert [(e.request_id, e.operation) for e in page.entries] == [(second, "debit")]
    assert page.has_more is True
    assert [(e.request_id, e.balance_after) for e in rest.entries] == [(first, 96)]
    assert rest.has_more is False
    assert {e.user_id for e in (*page.entries, *rest.entries)} == {USER}

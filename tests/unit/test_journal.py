"""The journal's and the jobs' state tables, the moves that follow them, and the request record
that the repository loads and saves with its operations and jobs."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from creativeflow.domain.actions import ActionKind
from creativeflow.domain.errors import InvalidTransition
from creativeflow.domain.jobs import Stage
from creativeflow.domain.model import CreditOperation, GenerationRequest, Job, RequestRecord, Sample
from creativeflow.domain.states import (
    DEBIT_TRANSITIONS,
    JOB_TRANSITIONS,
    REFUND_TRANSITIONS,
    CreditOperationKind,
    CreditOperationStatus,
    JobStatus,
    Status,
)
from tests.unit.fakes import InMemoryTracking

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
OP = CreditOperationStatus


def a_request(status: Status = Status.VALIDATING_CREDITS) -> GenerationRequest:
    return GenerationRequest(
        id="r-1",
        user_id="u-1",
        prompt="a cat",
        format="png",
        width=512,
        height=512,
        samples_count=2,
        correlation_id="c-1",
        created_at=NOW,
        status=status,
    )


def an_operation(kind: CreditOperationKind, status: CreditOperationStatus) -> CreditOperation:
    return CreditOperation("r-1", "u-1", "samples", kind, status, amount=4, attempts=1)


def a_job(status: JobStatus = JobStatus.PREPARED, *, job_id: str = "j-1", minutes: int = 0) -> Job:
    return Job(
        id=job_id,
        request_id="r-1",
        stage=Stage.SAMPLES,
        action="samples",
        attempt=1,
        status=status,
        deadline_at=NOW + timedelta(minutes=15),
        payload={"parameters": {"selected_sample": {"id": "s-2"}}},
        created_at=NOW + timedelta(minutes=minutes),
    )


MOVES = {
    OP.APPLIED: lambda op: op.apply(4, 17),
    OP.REFUSED: lambda op: op.refuse("insufficient_credits"),
    OP.UNKNOWN: lambda op: op.lose_reply("OdooOutcomeUnknown"),
    OP.PENDING: lambda op: op.retry_later("OdooUnavailable"),
    OP.REFUNDED: lambda op: op.mark_refunded(),
}


@pytest.mark.parametrize(
    ("kind", "table"),
    [
        (CreditOperationKind.DEBIT, DEBIT_TRANSITIONS),
        (CreditOperationKind.REFUND, REFUND_TRANSITIONS),
    ],
)
def test_an_operation_moves_exactly_along_its_kinds_table(
    kind: CreditOperationKind, table: dict[CreditOperationStatus, frozenset[CreditOperationStatus]]
) -> None:
    for current in CreditOperationStatus:
        for target, move in MOVES.items():
            operation = an_operation(kind, current)
            if target in table[current]:
                move(operation)
                assert operation.status is target
            else:
                with pytest.raises(InvalidTransition):
                    move(operation)
                assert operation.status is current, (kind, current, target)


def test_a_refunded_debit_and_a_settled_refund_never_move_again() -> None:
    assert DEBIT_TRANSITIONS[OP.REFUNDED] == frozenset()
    assert REFUND_TRANSITIONS[OP.REFUSED] == frozenset()
    assert REFUND_TRANSITIONS[OP.APPLIED] == frozenset({OP.APPLIED})  # a replayed receipt
    assert OP.REFUNDED not in set().union(*REFUND_TRANSITIONS.values())


def test_applying_records_the_ledger_entry_and_clears_the_last_error() -> None:
    debit = an_operation(CreditOperationKind.DEBIT, OP.UNKNOWN)
    debit.last_error = "OdooOutcomeUnknown"
    debit.apply(6, 42)
    assert (debit.status, debit.amount, debit.ledger_entry_id, debit.last_error) == (
        OP.APPLIED,
        6,
        42,
        None,
    )


def test_only_a_refused_debit_is_paid_again_as_a_new_attempt() -> None:
    debit = an_operation(CreditOperationKind.DEBIT, OP.REFUSED)
    debit.refusal_code = "insufficient_credits"
    debit.reopen()
    assert (debit.status, debit.refusal_code, debit.attempts) == (OP.PENDING, None, 2)
    for status in (OP.APPLIED, OP.UNKNOWN, OP.PENDING, OP.REFUNDED):
        with pytest.raises(InvalidTransition):
            an_operation(CreditOperationKind.DEBIT, status).reopen()


def test_only_an_applied_debit_has_a_refund() -> None:
    refund = an_operation(CreditOperationKind.DEBIT, OP.APPLIED).pending_refund()
    assert (refund.kind, refund.status, refund.amount) == (
        CreditOperationKind.REFUND,
        OP.PENDING,
        4,
    )
    for status in (OP.PENDING, OP.UNKNOWN, OP.REFUSED):
        with pytest.raises(InvalidTransition):
            an_operation(CreditOperationKind.DEBIT, status).pending_refund()
    with pytest.raises(InvalidTransition):
        an_operation(CreditOperationKind.REFUND, OP.APPLIED).pending_refund()


JOB_MOVES = {
    JobStatus.PUBLISHED: Job.published,
    JobStatus.SUCCEEDED: Job.succeeded,
    JobStatus.FAILED: Job.failed,
    JobStatus.SUPERSEDED: Job.superseded,
}


def test_a_job_moves_exactly_along_its_table() -> None:
    for current in JobStatus:
        for target, move in JOB_MOVES.items():
            job = a_job(current)
            if target in JOB_TRANSITIONS[current]:
                move(job)
                assert job.status is target
            else:
                with pytest.raises(InvalidTransition):
                    move(job)
                assert job.status is current
    assert {s for s in JobStatus if a_job(s).is_open} == {JobStatus.PREPARED, JobStatus.PUBLISHED}


def test_a_job_takes_its_granted_model_only_before_it_is_sent() -> None:
    job = a_job()
    job.payload = {"model": "creativeflow-standard-v1", "stage": "samples"}
    job.grant_model("creativeflow-draft-v1")
    assert job.payload == {"model": "creativeflow-draft-v1", "stage": "samples"}
    job.published()
    with pytest.raises(InvalidTransition):
        job.grant_model("creativeflow-advanced-v1")
    assert job.payload["model"] == "creativeflow-draft-v1"


def test_a_job_never_published_cannot_succeed_or_fail() -> None:
    for move in (Job.succeeded, Job.failed):
        with pytest.raises(InvalidTransition):
            move(a_job(JobStatus.PREPARED))


@pytest.mark.parametrize(
    ("kind", "start", "target"),
    [
        (ActionKind.SAMPLES, Status.VALIDATING_CREDITS, Status.PROCESSING_SAMPLES),
        (ActionKind.REGENERATION, Status.AWAITING_SELECTION, Status.PROCESSING_SAMPLES),
        (ActionKind.FINAL, Status.AWAITING_SELECTION, Status.PROCESSING_FINAL),
    ],
)
def test_each_kind_of_paid_step_moves_the_request_its_own_way(
    kind: ActionKind, start: Status, target: Status
) -> None:
    request = a_request(start)
    request.samples = [
        Sample("s-1", "https://cdn.example/1.png"),
        Sample("s-2", "https://cdn.example/2.png"),
    ]
    job = a_job()

    request.step_dispatched(kind, job, NOW)

    assert request.status is target
    assert request.deadline_at == job.deadline_at
    assert request.regeneration_count == (1 if kind is ActionKind.REGENERATION else 0)
    assert (request.samples == []) is (kind is ActionKind.REGENERATION)
    assert request.selected_sample_id == ("s-2" if kind is ActionKind.FINAL else None)
    if kind is ActionKind.SAMPLES:
        assert [h["status"] for h in request.history] == [
            "PUBLISHING_TO_QUEUE",
            "PROCESSING_SAMPLES",
        ]


def test_a_record_reports_only_what_changed_since_it_was_loaded() -> None:
    debit = an_operation(CreditOperationKind.DEBIT, OP.APPLIED)
    debit.id = 1
    record = RequestRecord(
        a_request(Status.PROCESSING_SAMPLES), [debit], [a_job(JobStatus.PUBLISHED)]
    )
    assert record.changes().request is False
    assert record.changes().changed_operations == record.changes().new_operations == ()

    refund = record.journal_refund(debit)
    record.jobs[0].failed()
    record.request.deadline_at = NOW

    changes = record.changes()
    assert changes.request is True
    assert changes.new_operations == (refund,)
    assert changes.changed_operations == ()
    assert changes.changed_jobs == (record.jobs[0],)
    assert record.journal_refund(debit) is refund  # journalled once
    record.mark_saved()
    refund.id = 2
    assert record.changes().changed_operations == (refund,)  # an id given by the store only


def test_a_record_pays_a_refused_action_again_and_names_the_debit_being_paid() -> None:
    refused = an_operation(CreditOperationKind.DEBIT, OP.REFUSED)
    refused.id = 1
    record = RequestRecord(a_request(Status.AWAITING_SELECTION), [refused], [])
    assert record.debit_being_paid() is None
    assert record.journal_debit("samples") is refused
    assert refused.status is OP.PENDING
    assert record.debit_being_paid() is refused
    final = record.journal_debit("final")
    assert (final.action, final.status, final.attempts) == ("final", OP.PENDING, 1)
    assert record.debits_taken() == {"samples": OP.PENDING, "final": OP.PENDING}


def test_the_open_job_is_the_newest_one_still_waiting() -> None:
    record = RequestRecord(
        a_request(),
        [],
        [
            a_job(JobStatus.PUBLISHED, job_id="old", minutes=0),
            a_job(JobStatus.PREPARED, job_id="new", minutes=5),
            a_job(JobStatus.SUPERSEDED, job_id="newest", minutes=9),
        ],
    )
    open_job = record.open_job()
    assert open_job is not None and open_job.id == "new"
    assert RequestRecord(a_request(), [], [a_job(JobStatus.SUCCEEDED)]).open_job() is None


def test_the_repository_saves_a_record_and_loads_it_back_whole() -> None:
    tracking = InMemoryTracking()

    def open_step(repo) -> None:  # type: ignore[no-untyped-def]
        request = a_request()
        repo.add_request(request)
        record = RequestRecord(request, [], [])
        record.journal_debit("samples")
        record.add_job(a_job())
        repo.save_record(record, NOW)

    def dispatch(repo) -> RequestRecord:  # type: ignore[no-untyped-def]
        record = repo.load_record("r-1")
        debit, job = record.debit("samples"), record.jobs[0]
        debit.apply(4, 9)
        job.published()
        record.request.step_dispatched(ActionKind.SAMPLES, job, NOW)
        repo.save_record(record, NOW)
        assert record.changes().request is False  # saved: nothing is left to write
        return record

    def load(repo) -> RequestRecord | None:  # type: ignore[no-untyped-def]
        return repo.load_record("r-1")

    async def scenario() -> tuple[RequestRecord, RequestRecord | None, RequestRecord | None]:
        await tracking.run(open_step)
        saved = await tracking.run(dispatch)
        return (
            saved,
            await tracking.run(load),
            await tracking.run(lambda repo: repo.load_record("x")),
        )

    saved, loaded, missing = asyncio.run(scenario())
    assert missing is None
    assert loaded is not None
    assert loaded.request.status is Status.PROCESSING_SAMPLES
    assert [(op.kind, op.status, op.ledger_entry_id) for op in loaded.operations] == [
        (CreditOperationKind.DEBIT, OP.APPLIED, 9)
    ]
    assert [job.status for job in loaded.jobs] == [JobStatus.PUBLISHED]
    assert loaded.request == saved.request

"""The client-facing use cases: submit, select a sample, regenerate, cancel, read.

Each paid step is one saga: (1) one transaction journals the debit and stores the job,
(2) one Odoo debit (which also checks the tier), (3) one confirmed publish, (4) one transaction
settles everything. A publish that fails after the debit is refunded before the client is answered.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from creativeflow import correlation
from creativeflow.domain.actions import (
    FIRST_FINAL,
    FIRST_REGENERATION,
    SAMPLES,
    Action,
    ActionKind,
)
from creativeflow.domain.assets import AssetRole, link_for
from creativeflow.domain.brief import CreativeBrief
from creativeflow.domain.charges import stage_charges
from creativeflow.domain.credits import CreditReceipt, GenerationSpec, Quote
from creativeflow.domain.errors import (
    Conflict,
    CreditServiceUnavailable,
    DispatchUnavailable,
    NotFound,
)
from creativeflow.domain.jobs import FailureCategory, JobCancellation, Stage
from creativeflow.domain.model import Failure, GenerationRequest, Job, RequestRecord, Sample
from creativeflow.domain.states import Status

from .assets import AssetKeeper
from .flow import (
    DebitOutcome,
    FlowConfig,
    build_job,
    debit_once,
    new_id,
    next_action,
    publish_once,
)
from .idempotency import IdempotencyKey, StoredAnswer
from .outbox import EventRelay
from .ports import Clock, CreditLedger, JobPublisher, Tracking, TrackingStore
from .refunds import Refunder

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SubmitGeneration:
    prompt: str
    format: str
    width: int
    height: int
    samples: int
    style_guidance: str | None = None
    brand_elements: dict[str, Any] | None = None
    project_id: str | None = None
    # a code of Odoo's model catalogue; None: the tier's default
    model: str | None = None
    # the older way to ask for the advanced model (FlowConfig.advanced_model); model wins
    advanced_model: bool = False
    brief: CreativeBrief = field(default_factory=CreativeBrief)
    webhook_url: str | None = None  # where the client wants every event of it posted


@dataclass(frozen=True, slots=True)
class RequestFilter:
    """Which of a user's requests to list: every given condition holds."""

    status: Status | None = None
    project_id: str | None = None
    created_from: datetime | None = None  # inclusive
    created_before: datetime | None = None  # exclusive


# a step being paid for (VALIDATING_CREDITS, PUBLISHING_TO_QUEUE) waits for its outcome first
CANCELLABLE = (
    Status.PENDING,
    Status.PROCESSING_SAMPLES,
    Status.AWAITING_SELECTION,
    Status.PROCESSING_FINAL,
)


@dataclass(frozen=True, slots=True)
class _Stopped:
    """A cancelled request, the job it stopped and the debit journalled for refund."""

    request: GenerationRequest
    job: Job | None
    refund_action: str | None


@dataclass(frozen=True, slots=True)
class PaidStep:
    """One paid stage of a request: what kind of step it is (the first samples, a regeneration,
    the final asset), the action it is paid under and the job it dispatches."""

    request: GenerationRequest
    job: Job
    action: str
    kind: ActionKind
    spec: GenerationSpec
    idempotency: IdempotencyKey | None = None


class GenerationService:
    def __init__(
        self,
        db: TrackingStore,
        credits: CreditLedger,
        publisher: JobPublisher,
        clock: Clock,
        config: FlowConfig,
        refunder: Refunder,
        events: EventRelay | None = None,
        *,
        assets: AssetKeeper | None = None,
    ) -> None:
        self._assets = assets
        self._db = db
        self._credits = credits
        self._publisher = publisher
        self._clock = clock
        self._config = config
        self._refunder = refunder
        self._events = events

    # --- reading ------------------------------------------------------------------------------

    async def get(self, user_id: str, request_id: str) -> GenerationRequest:
        def _get(repo: Tracking) -> GenerationRequest | None:
            request = repo.get_request(request_id)
            if request is None or request.user_id != user_id:
                return None
            request.charges = stage_charges(repo.operations_for_request(request.id))
            if self._assets is not None:
                self._assets.attach([request], repo.stored_assets_for_requests([request.id]))
            return request

        request = await self._db.run(_get)
        if request is None:
            # another user's request is indistinguishable from one that does not exist
            raise NotFound("generation request not found", request_id=request_id)
        return request

    async def list(
        self, user_id: str, which: RequestFilter, *, limit: int, offset: int
    ) -> tuple[list[GenerationRequest], int]:
        def _list(repo: Tracking) -> tuple[list[GenerationRequest], int]:
            requests, total = repo.list_requests(
                user_id,
                status=which.status,
                project_id=which.project_id,
                created_from=which.created_from,
                created_before=which.created_before,
                limit=limit,
                offset=offset,
            )
            journal = repo.operations_for_requests([r.id for r in requests])
            for request in requests:
                request.charges = stage_charges(op for op in journal if op.request_id == request.id)
            if self._assets is not None:
                stored = repo.stored_assets_for_requests([r.id for r in requests])
                self._assets.attach(requests, stored)
            return requests, total

        return await self._db.run(_list)

    # --- submit -------------------------------------------------------------------------------

    def new_request(
        self, user_id: str, command: SubmitGeneration, correlation_id: str
    ) -> GenerationRequest:
        now = self._clock.now()
        request = GenerationRequest(
            id=new_id(),
            user_id=user_id,
            prompt=command.prompt,
            format=command.format,
            width=command.width,
            height=command.height,
            samples_count=command.samples,
            correlation_id=correlation_id,
            created_at=now,
            style_guidance=command.style_guidance,
            brand_elements=command.brand_elements,
            project_id=command.project_id,
            model=self._config.requested_model(command.model, command.advanced_model),
            brief=command.brief,
        )
        request.start(now)
        return request

    async def quote(self, user_id: str, command: SubmitGeneration) -> Quote:
        """What submitting ``command`` would cost and whether the plan allows it now, the cap on
        unfinished requests included: one Odoo call, nothing charged, nothing stored."""
        spec = self.new_request(user_id, command, correlation_id="").spec()
        in_flight = await self._db.run(lambda repo: repo.count_in_flight(user_id))
        return await self._credits.quote(user_id, replace(spec, requests_in_flight=in_flight))

    async def submit(
        self,
        user_id: str,
        command: SubmitGeneration,
        correlation_id: str,
        idempotency: IdempotencyKey | None = None,
    ) -> GenerationRequest | StoredAnswer:
        """Debit, dispatch and answer (the synchronous credit check); a retried key's first
        answer instead, when it has one."""
        request = self.new_request(user_id, command, correlation_id)
        step = await self._db.run(
            lambda repo: self._open_submit(repo, request, idempotency, command.webhook_url)
        )
        if isinstance(step, StoredAnswer):
            return step
        return await self._pay_and_dispatch(step, fail_request_on_error=True)

    async def accept(
        self,
        user_id: str,
        command: SubmitGeneration,
        correlation_id: str,
        idempotency: IdempotencyKey | None = None,
    ) -> GenerationRequest | StoredAnswer:
        """Record the request as PENDING and answer at once (the asynchronous credit check);
        :meth:`process_pending` debits and dispatches it."""
        request = self.new_request(user_id, command, correlation_id)
        request.deadline_at = self._clock.now() + self._config.dispatch_deadline

        def _accept(repo: Tracking) -> GenerationRequest | StoredAnswer:
            if idempotency is not None:
                earlier = idempotency.claim(repo, self._clock.now(), request.id)
                if earlier is not None:
                    return earlier
            repo.add_request(request)
            if command.webhook_url is not None:
                repo.add_client_webhook(
                    request.id, user_id, command.webhook_url, request.created_at
                )
            if idempotency is not None:
                idempotency.answer(repo, request)
            return request

        return await self._db.run(_accept)

    async def process_pending(self, request_id: str) -> GenerationRequest:
        step = await self._db.run(lambda repo: self._open_pending(repo, request_id))
        if step is None:
            found = await self._db.run(lambda repo: repo.get_request(request_id))
            if found is None:
                raise NotFound("generation request not found", request_id=request_id)
            return found
        return await self._pay_and_dispatch(step, fail_request_on_error=True)

    async def process_pending_quietly(self, request_id: str) -> None:
        """The asynchronous credit check's worker step, run after the 202: nobody waits for it,
        the request records the outcome, and recovery picks up what it leaves."""
        try:
            await self.process_pending(request_id)
        except Exception as error:
            log.info("pending request %s ended with %s", request_id, type(error).__name__)

    def _open_submit(
        self,
        repo: Tracking,
        request: GenerationRequest,
        idempotency: IdempotencyKey | None,
        webhook_url: str | None = None,
    ) -> PaidStep | StoredAnswer:
        now = self._clock.now()
        if idempotency is not None:
            earlier = idempotency.claim(repo, now, request.id)
            if earlier is not None:
                return earlier
        # one submit of a user at a time counts the requests in flight, so the tier's cap holds
        repo.lock_user(request.user_id)
        in_flight = repo.count_in_flight(request.user_id)
        request.transition(Status.VALIDATING_CREDITS, now)
        request.deadline_at = now + self._config.dispatch_deadline
        repo.add_request(request)
        if webhook_url is not None:
            repo.add_client_webhook(request.id, request.user_id, webhook_url, now)
        return self._journal_step(
            repo,
            RequestRecord(request, [], []),
            str(SAMPLES),
            attempt=1,
            idempotency=idempotency,
            requests_in_flight=in_flight,
        )

    def _open_pending(self, repo: Tracking, request_id: str) -> PaidStep | None:
        record = repo.load_record(request_id)
        if record is None or record.request.status is not Status.PENDING:
            return None
        request = record.request
        repo.lock_user(request.user_id)
        in_flight = repo.count_in_flight(request.user_id) - 1  # this one is PENDING already
        request.transition(Status.VALIDATING_CREDITS, self._clock.now())
        return self._journal_step(
            repo, record, str(SAMPLES), attempt=1, requests_in_flight=in_flight
        )

    def _journal_step(
        self,
        repo: Tracking,
        record: RequestRecord,
        action: str,
        *,
        attempt: int,
        selected_sample: dict[str, Any] | None = None,
        idempotency: IdempotencyKey | None = None,
        requests_in_flight: int | None = None,
    ) -> PaidStep:
        """Journal the step's debit and store its job, in the transaction that opens it."""
        now = self._clock.now()
        request = record.request
        kind = Action.parse(action).kind
        stage = Stage.FINAL if kind is ActionKind.FINAL else Stage.SAMPLES
        record.journal_debit(action)
        job = build_job(
            self._config,
            request,
            stage=stage,
            action=action,
            attempt=attempt,
            now=now,
            selected_sample=selected_sample,
        )
        record.add_job(job)
        repo.save_record(record, now)
        spec = replace(request.spec(), requests_in_flight=requests_in_flight)
        if stage is Stage.FINAL:
            spec = replace(spec, samples=1)
        return PaidStep(
            request=request,
            job=job,
            action=action,
            kind=kind,
            spec=spec,
            idempotency=idempotency,
        )

    # --- selection, regeneration, cancellation ------------------------------------------------

    async def select(
        self,
        user_id: str,
        request_id: str,
        sample_id: str,
        idempotency: IdempotencyKey | None = None,
    ) -> GenerationRequest | StoredAnswer:
        step = await self._db.run(
            lambda repo: self._open_selection(repo, user_id, request_id, sample_id, idempotency)
        )
        if isinstance(step, StoredAnswer):
            return step
        return await self._pay_and_dispatch(step, fail_request_on_error=False)

    def _open_selection(
        self,
        repo: Tracking,
        user_id: str,
        request_id: str,
        sample_id: str,
        idempotency: IdempotencyKey | None,
    ) -> PaidStep | StoredAnswer:
        record = self._owned_record(repo, user_id, request_id)
        request = record.request
        if idempotency is not None:
            earlier = idempotency.claim(repo, self._clock.now(), request.id)
            if earlier is not None:
                return earlier
        request.require_status(Status.AWAITING_SELECTION, action="select a sample of")
        sample = request.sample(sample_id)
        return self._journal_step(
            repo,
            record,
            _next_free_action(record, FIRST_FINAL),
            attempt=1,
            selected_sample={
                "id": sample.id,
                "url": self._sample_url_for_n8n(repo, request.id, sample),
            },
            idempotency=idempotency,
        )

    def _sample_url_for_n8n(self, repo: Tracking, request_id: str, sample: Sample) -> str:
        """Where n8n fetches the chosen sample: our stored copy, signed for as long as the final
        stage may take (the provider's URL may have expired while the user chose), else the
        provider's URL."""
        if self._assets is None:
            return sample.url
        ttl = max(self._config.final_deadline, self._assets.config.url_ttl)
        copies = [  # only this sample's copies are signed
            asset
            for asset in repo.stored_assets_for_requests([request_id])
            if asset.role is AssetRole.SAMPLE and asset.asset_id == sample.id
        ]
        return link_for(self._assets.links(copies, ttl=ttl), AssetRole.SAMPLE, sample).url

    async def regenerate(
        self, user_id: str, request_id: str, idempotency: IdempotencyKey | None = None
    ) -> GenerationRequest | StoredAnswer:
        step = await self._db.run(
            lambda repo: self._open_regeneration(repo, user_id, request_id, idempotency)
        )
        if isinstance(step, StoredAnswer):
            return step
        return await self._pay_and_dispatch(step, fail_request_on_error=False)

    def _open_regeneration(
        self,
        repo: Tracking,
        user_id: str,
        request_id: str,
        idempotency: IdempotencyKey | None,
    ) -> PaidStep | StoredAnswer:
        record = self._owned_record(repo, user_id, request_id)
        request = record.request
        if idempotency is not None:
            earlier = idempotency.claim(repo, self._clock.now(), request.id)
            if earlier is not None:
                return earlier
        request.require_status(Status.AWAITING_SELECTION, action="regenerate samples of")
        action = _next_free_action(record, FIRST_REGENERATION)
        round_number = Action.parse(action).attempt + 1
        return self._journal_step(
            repo, record, action, attempt=round_number, idempotency=idempotency
        )

    async def cancel(self, user_id: str, request_id: str) -> GenerationRequest:
        """Cancel a request that is pending, being processed or awaiting a selection.

        A stage being processed is refunded (nothing it paid for was delivered) and n8n is told
        to stop its job; a result that comes anyway is late and changes nothing. A step being
        paid for right now is refused (409): its outcome is not known yet."""
        stopped = await self._db.run(lambda repo: self._cancel(repo, user_id, request_id))
        request = stopped.request
        correlation.set_current(request.correlation_id)
        log.info(
            "request %s cancelled%s",
            request.id,
            f" while job {stopped.job.id} was processing" if stopped.job else "",
            extra={"request_id": request.id},
        )
        if stopped.job is None:
            return request
        await self._tell_n8n(request, stopped.job)
        if stopped.refund_action is None:
            return request
        await self._refunder.refund(
            request.id, stopped.refund_action, "cancelled_by_user", request.correlation_id
        )
        return await self.get(user_id, request_id)

    def _cancel(self, repo: Tracking, user_id: str, request_id: str) -> _Stopped:
        record = self._owned_record(repo, user_id, request_id)
        record.request.require_status(*CANCELLABLE, action="cancel")
        _refuse_if_paying(record)
        job = record.cancel(self._clock.now())
        refund = record.refund(job.action) if job is not None else None
        repo.save_record(record, self._clock.now())
        return _Stopped(_with_charges(record), job, refund.action if refund is not None else None)

    async def _tell_n8n(self, request: GenerationRequest, job: Job) -> None:
        """Best effort: a cancellation n8n never hears of costs it work, never credits."""
        cancellation = JobCancellation(
            job_id=job.id,
            request_id=request.id,
            stage=job.stage,
            action=job.action,
            correlation_id=request.correlation_id,
            cancelled_at=self._clock.now(),
        )
        try:
            await self._publisher.cancel(cancellation)
        except DispatchUnavailable as failure:
            log.warning(
                "n8n was not told that job %s is cancelled (%s); its result will be ignored",
                job.id,
                failure,
                extra={"request_id": request.id, "job_id": job.id},
            )

    def _owned_record(self, repo: Tracking, user_id: str, request_id: str) -> RequestRecord:
        record = repo.load_record(request_id)
        if record is None or record.request.user_id != user_id:
            raise NotFound("generation request not found", request_id=request_id)
        return record

    # --- the saga -----------------------------------------------------------------------------

    async def _pay_and_dispatch(
        self, step: PaidStep, *, fail_request_on_error: bool
    ) -> GenerationRequest:
        # a later step of a request (selection, regeneration) logs under the request's own id
        correlation.set_current(step.request.correlation_id)
        outcome = await debit_once(self._credits, step.request, step.action, step.spec)
        if outcome.outcome_unknown:
            outcome = await self._learn_debit_outcome(step, outcome)
        if outcome.receipt is None:
            await self._db.run(
                lambda repo: self._close_unpaid(repo, step, outcome, fail_request_on_error)
            )
            self._publish_events(step, fail_request_on_error)
            if outcome.refusal is not None:
                raise outcome.refusal
            assert outcome.fault is not None
            raise outcome.fault
        step = self._with_granted_model(step, outcome.receipt)
        failure = await publish_once(self._publisher, step.job)
        if failure is None:
            dispatched = await self._db.run(
                lambda repo: self._close_dispatched(repo, step, outcome)
            )
            log.info(
                "request %s: %s paid (%s credits), job %s dispatched",
                dispatched.id,
                step.action,
                outcome.receipt.amount if outcome.receipt else "?",
                step.job.id,
                extra={"request_id": dispatched.id, "job_id": step.job.id},
            )
            return dispatched
        await self._compensate(step, outcome, fail_request_on_error, failure)
        self._publish_events(step, fail_request_on_error)
        raise failure

    def _publish_events(self, step: PaidStep, failed_request: bool) -> None:
        """A paid step that failed its request wrote an AIGenerationFailed event."""
        if self._events is not None and failed_request:
            self._events.schedule(step.request.id)

    def _with_granted_model(self, step: PaidStep, receipt: CreditReceipt) -> PaidStep:
        """The step whose job names the model Odoo's debit granted, before it is published."""
        job = replace(step.job, payload=dict(step.job.payload))
        job.grant_model(self._config.granted_model(receipt, step.request))
        return replace(step, job=job)

    async def _learn_debit_outcome(self, step: PaidStep, outcome: DebitOutcome) -> DebitOutcome:
        """Odoo may have applied the debit: ask its ledger once rather than guess."""
        try:
            entries = await self._credits.ledger_by_requests([step.request.id])
        except CreditServiceUnavailable:
            return outcome  # still unknown: recovery settles it against the ledger
        for entry in entries:
            if entry.action == step.action and entry.operation == "debit":
                return DebitOutcome(
                    receipt=CreditReceipt(
                        entry_id=entry.id,
                        user_id=entry.user_id,
                        request_id=step.request.id,
                        action=step.action,
                        amount=entry.amount,
                        balance_after=entry.balance_after,
                        replay=True,
                        model=entry.model,
                    )
                )
        return DebitOutcome(fault=CreditServiceUnavailable("the credit service did not answer"))

    def _close_unpaid(
        self,
        repo: Tracking,
        step: PaidStep,
        outcome: DebitOutcome,
        fail_request: bool,
    ) -> None:
        now = self._clock.now()
        record = _record_of(repo, step)
        debit = record.debit(step.action)
        assert debit is not None
        if outcome.outcome_unknown:
            # leave the request (and its idempotency key) where they are: recovery settles the
            # debit against Odoo's ledger, then releases the key
            debit.lose_reply(type(outcome.fault).__name__)
            repo.save_record(record, now)
            return
        if step.idempotency is not None:
            error = outcome.refusal or outcome.fault
            assert error is not None
            step.idempotency.answer_error(repo, error)
        debit.refuse(outcome.refusal.code if outcome.refusal else "credit_service_unavailable")
        _job_of(record, step).superseded()
        if fail_request:
            # a refusal is the user's balance or plan speaking, not a failure of the platform
            category = (
                FailureCategory.CREDITS_REFUSED if outcome.refusal else FailureCategory.PLATFORM
            )
            assert debit.refusal_code is not None
            record.request.fail(Failure(category, debit.refusal_code, _explain(outcome)), now)
        repo.save_record(record, now)

    def _close_dispatched(
        self, repo: Tracking, step: PaidStep, outcome: DebitOutcome
    ) -> GenerationRequest:
        now = self._clock.now()
        receipt = outcome.receipt
        assert receipt is not None
        record = _record_of(repo, step)
        debit = record.debit(step.action)
        assert debit is not None
        debit.apply(receipt.amount, receipt.entry_id)
        job = _job_of(record, step)
        model = step.job.payload["model"]
        job.grant_model(model)
        job.published()
        record.request.model = model  # what the request's later steps ask Odoo for
        record.request.step_dispatched(step.kind, job, now)
        repo.save_record(record, now)
        request = _with_charges(record)
        if step.idempotency is not None:
            step.idempotency.answer(repo, request)
        return request

    async def _compensate(
        self,
        step: PaidStep,
        outcome: DebitOutcome,
        fail_request: bool,
        failure: DispatchUnavailable,
    ) -> None:
        """The job could not be dispatched after the debit: refund before answering."""
        receipt = outcome.receipt
        assert receipt is not None

        def _journal(repo: Tracking) -> None:
            now = self._clock.now()
            record = _record_of(repo, step)
            debit = record.debit(step.action)
            assert debit is not None
            debit.apply(receipt.amount, receipt.entry_id)
            record.journal_refund(debit)
            _job_of(record, step).superseded()
            if step.idempotency is not None:
                step.idempotency.answer_error(repo, failure)
            if fail_request:
                record.request.fail(
                    Failure(
                        FailureCategory.PLATFORM,
                        "dispatch_unavailable",
                        "the job could not be dispatched; the credits were refunded",
                    ),
                    now,
                )
            repo.save_record(record, now)

        await self._db.run(_journal)
        await self._refunder.refund(
            step.request.id, step.action, "dispatch_failed", step.request.correlation_id
        )


def _record_of(repo: Tracking, step: PaidStep) -> RequestRecord:
    record = repo.load_record(step.request.id)
    assert record is not None, "a paid step's request is never deleted"
    return record


def _job_of(record: RequestRecord, step: PaidStep) -> Job:
    job = record.job(step.job.id)
    assert job is not None, "a paid step's job is stored when the step opens"
    return job


def _refuse_if_paying(record: RequestRecord) -> None:
    paying = record.debit_being_paid()
    if paying is not None:
        raise Conflict(
            "another step of this request is being paid for; try again shortly",
            action=paying.action,
        )


def _next_free_action(record: RequestRecord, first: Action) -> str:
    _refuse_if_paying(record)
    return next_action(first, record.debits_taken())


def _with_charges(record: RequestRecord) -> GenerationRequest:
    """The request, with what each of its paid steps charged and refunded (after it is saved:
    the charges are read from the journal, not stored with the request)."""
    record.request.charges = stage_charges(record.operations)
    return record.request


def _explain(outcome: DebitOutcome) -> str:
    """The sentence a user reads in the request's failure."""
    error = outcome.refusal or outcome.fault
    assert error is not None
    return error.public_detail


__all__ = [
    "DispatchUnavailable",
    "GenerationService",
    "RequestFilter",
    "SubmitGeneration",
]

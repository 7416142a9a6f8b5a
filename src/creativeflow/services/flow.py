"""Shared pieces of the generation flow: its configuration, job building, and paying for a job.

Paying for a job is the saga every stage repeats: journal the debit, ask Odoo, publish, settle.
A publish that fails after the debit is compensated by a refund before anyone is answered.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from creativeflow.domain.actions import Action
from creativeflow.domain.ai_models import ADVANCED_MODEL
from creativeflow.domain.credits import CreditReceipt, GenerationSpec
from creativeflow.domain.errors import (
    CreditOutcomeUnknown,
    CreditServiceUnavailable,
    CreditsRefused,
    DispatchUnavailable,
)
from creativeflow.domain.jobs import CallbackUrls, JobMessage, Stage
from creativeflow.domain.model import GenerationRequest, Job
from creativeflow.domain.states import CreditOperationStatus, JobStatus

from .ports import CreditLedger, JobPublisher

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FlowConfig:
    callback_base_url: str
    samples_deadline: timedelta = timedelta(minutes=15)
    final_deadline: timedelta = timedelta(minutes=30)
    dispatch_deadline: timedelta = timedelta(minutes=2)
    # the job's model when Odoo grants none (an addon older than the model catalogue)
    standard_model: str = "creativeflow-standard-v1"
    # what the older request field ``advanced_model: true`` asks for
    advanced_model: str = ADVANCED_MODEL
    # off: a request's choice of model is ignored, every job runs on the tier's default
    model_selector: bool = True
    refund_on_system_failure: bool = True

    def callback_urls(self) -> CallbackUrls:
        base = self.callback_base_url.rstrip("/") + "/api/v1/callbacks/n8n"
        return CallbackUrls(
            generic=base, samples=f"{base}/samples", final=f"{base}/final", error=f"{base}/error"
        )

    def deadline(self, stage: Stage, now: datetime) -> datetime:
        return now + (self.final_deadline if stage is Stage.FINAL else self.samples_deadline)

    def requested_model(self, model: str | None, legacy_advanced: bool) -> str | None:
        """The model a new request asks Odoo for: the one it names, else with the older flag
        the advanced model; ``None`` asks for the tier's default (always, with the selector
        off). Odoo's debit grants it or refuses it."""
        if not self.model_selector:
            return None
        if model is not None:
            return model
        return self.advanced_model if legacy_advanced else None

    def granted_model(self, receipt: CreditReceipt, request: GenerationRequest) -> str:
        """The model a paid job runs on: the one Odoo's debit granted; from an Odoo older than
        the model catalogue, which grants none, the one asked for or ``standard_model``."""
        return receipt.model or request.model or self.standard_model


def new_id() -> str:
    return str(uuid.uuid4())


def build_job(
    config: FlowConfig,
    request: GenerationRequest,
    *,
    stage: Stage,
    action: str,
    attempt: int,
    now: datetime,
    selected_sample: dict[str, Any] | None = None,
) -> Job:
    """A job record whose payload is the message n8n will receive, stored before publishing so
    recovery can publish exactly the same message again. Its ``model`` is the request's (the
    standard model while the tier's default is not known yet): the step's debit grants the
    model, and the job takes it before it is published (``Job.grant_model``)."""
    job_id = new_id()
    parameters: dict[str, Any] = {
        "prompt": request.prompt,
        "format": request.format,
        "width": request.width,
        "height": request.height,
        "style_guidance": request.style_guidance,
        "brand_elements": request.brand_elements,
        "project_id": request.project_id,
        **request.brief.to_dict(),
    }
    if stage is Stage.SAMPLES:
        parameters["samples"] = request.samples_count
    if selected_sample is not None:
        parameters["selected_sample"] = selected_sample
    deadline = config.deadline(stage, now)
    message = JobMessage(
        job_id=job_id,
        request_id=request.id,
        user_id=request.user_id,
        stage=stage,
        attempt=attempt,
        action=action,
        model=request.model or config.standard_model,
        correlation_id=request.correlation_id,
        created_at=now,
        deadline_at=deadline,
        parameters=parameters,
        callbacks=config.callback_urls(),
    )
    return Job(
        id=job_id,
        request_id=request.id,
        stage=stage,
        action=action,
        attempt=attempt,
        status=JobStatus.PREPARED,
        deadline_at=deadline,
        payload=message.to_json_dict(),
        created_at=now,
    )


def job_message(job: Job) -> JobMessage:
    """Rebuild the stored message (for publishing and republishing)."""
    payload = job.payload
    callback = payload["callback"]
    return JobMessage(
        job_id=payload["job_id"],
        request_id=payload["request_id"],
        user_id=payload["user_id"],
        stage=Stage(payload["stage"]),
        attempt=payload["attempt"],
        action=payload["action"],
        model=payload["model"],
        correlation_id=payload["correlation_id"],
        created_at=datetime.fromisoformat(payload["created_at"]),
        deadline_at=datetime.fromisoformat(payload["deadline_at"]),
        parameters=payload["parameters"],
        callbacks=CallbackUrls(
            generic=callback["url"],
            samples=callback["samples_url"],
            final=callback["final_url"],
            error=callback["error_url"],
        ),
    )


def next_action(first: Action, taken: dict[str, CreditOperationStatus]) -> str:
    """The first action of a stage, from ``first`` on, that no applied or refunded debit holds.

    A refused debit moved no credits, so its name may be paid again; a refunded one may not
    (Odoo answers a replay for it).
    """
    action = first
    while True:
        status = taken.get(str(action))
        if status is None or status is CreditOperationStatus.REFUSED:
            return str(action)
        action = action.following()


@dataclass(frozen=True, slots=True)
class DebitOutcome:
    """What the debit step learnt: a receipt, a refusal, or a fault (with whether it may have
    been applied)."""

    receipt: CreditReceipt | None = None
    refusal: CreditsRefused | None = None
    fault: CreditServiceUnavailable | None = None

    @property
    def outcome_unknown(self) -> bool:
        return isinstance(self.fault, CreditOutcomeUnknown)


async def debit_once(
    credits: CreditLedger,
    request: GenerationRequest,
    action: str,
    spec: GenerationSpec,
) -> DebitOutcome:
    try:
        receipt = await credits.debit(
            request.user_id, request.id, action, spec, request.correlation_id
        )
    except CreditsRefused as refusal:
        return DebitOutcome(refusal=refusal)
    except CreditServiceUnavailable as fault:
        log.warning(
            "debit %s of request %s did not complete: %s",
            action,
            request.id,
            type(fault).__name__,
            extra={"request_id": request.id, "action": action},
        )
        return DebitOutcome(fault=fault)
    return DebitOutcome(receipt=receipt)


async def publish_once(publisher: JobPublisher, job: Job) -> DispatchUnavailable | None:
    try:
        await publisher.publish(job_message(job))
    except DispatchUnavailable as failure:
        log.warning(
            "job %s of request %s was not published: %s",
            job.id,
            job.request_id,
            failure.detail,
            extra={"request_id": job.request_id, "job_id": job.id},
        )
        return failure
    return None

"""What the simulator answers to a job, and the callback bodies it sends (pure functions).

Prompt triggers make a test's outcome certain; without one, the configured failure shares decide:

    [fail:platform]   failed, category platform, code provider_unavailable
    [fail:timeout]    failed, category platform, code provider_timeout
    [fail:content]    failed, category content_policy, code content_policy_violation
    [hold]            no callback at all (the job is acked and dropped, to test deadlines)
    [wait:N]          the answer comes N more seconds later (at most 60), e.g. to cancel meanwhile
    [duplicate]       the callback is sent twice, each with its own webhook-id
"""

from __future__ import annotations

import dataclasses
import enum
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from creativeflow.domain.jobs import CallbackEvent, FailureCategory, Stage

DEFAULT_ASSET_BASE_URL = "https://assets.creativeflow.local"
MAX_EXTRA_WAIT = 60.0
_WAIT = re.compile(r"\[wait:(\d{1,2}(?:\.\d+)?)\]")

_FAILURE_MESSAGES = {
    "provider_timeout": "The image provider did not answer in time (simulated).",
    "provider_unavailable": "The image provider is unavailable (simulated).",
    "content_policy_violation": "The prompt was refused by the content policy (simulated).",
}


class OutcomeKind(enum.StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    HOLD = "hold"


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: OutcomeKind
    category: FailureCategory | None = None
    code: str | None = None
    duplicate: bool = False
    extra_wait: float = 0.0


def _platform_failure(code: str) -> Outcome:
    return Outcome(OutcomeKind.FAILURE, FailureCategory.PLATFORM, code)


_CONTENT_REJECTION = Outcome(
    OutcomeKind.FAILURE, FailureCategory.CONTENT_POLICY, "content_policy_violation"
)


def decide_outcome(
    prompt: str, rng: random.Random, platform_failure_rate: float, content_rejection_rate: float
) -> Outcome:
    """A prompt trigger wins; otherwise one draw of ``rng`` against the two failure shares."""
    duplicate = "[duplicate]" in prompt
    outcome = _triggered_outcome(prompt)
    if outcome is None:
        draw = rng.random()
        if draw < platform_failure_rate:
            outcome = _platform_failure(rng.choice(["provider_timeout", "provider_unavailable"]))
        elif draw < platform_failure_rate + content_rejection_rate:
            outcome = _CONTENT_REJECTION
        else:
            outcome = Outcome(OutcomeKind.SUCCESS)
    wait = _WAIT.search(prompt)
    return dataclasses.replace(
        outcome,
        duplicate=duplicate,
        extra_wait=min(float(wait.group(1)), MAX_EXTRA_WAIT) if wait else 0.0,
    )


def _triggered_outcome(prompt: str) -> Outcome | None:
    if "[hold]" in prompt:
        return Outcome(OutcomeKind.HOLD)
    if "[fail:platform]" in prompt:
        return _platform_failure("provider_unavailable")
    if "[fail:timeout]" in prompt:
        return _platform_failure("provider_timeout")
    if "[fail:content]" in prompt:
        return _CONTENT_REJECTION
    return None


def callback_event(job: dict[str, Any], outcome: Outcome) -> CallbackEvent:
    if outcome.kind is OutcomeKind.FAILURE:
        return CallbackEvent.FAILED
    if job["stage"] == Stage.SAMPLES.value:
        return CallbackEvent.SAMPLES_READY
    return CallbackEvent.FINAL_READY


# publishes an asset (key, width, height) and answers its URL: a provider's real output store
AssetPublisher = Callable[[str, int, int], str]


def build_callback(
    job: dict[str, Any],
    outcome: Outcome,
    asset_base_url: str = DEFAULT_ASSET_BASE_URL,
    publish: AssetPublisher | None = None,
) -> dict[str, Any]:
    """The JSON body n8n would post for ``job`` (a schema-valid job message) and ``outcome``.
    With ``publish``, each asset is made for real and its URL is the one ``publish`` answers;
    without, the URLs are under ``asset_base_url`` and lead nowhere."""
    event = callback_event(job, outcome)
    body: dict[str, Any] = {
        "event": event.value,
        "job_id": job["job_id"],
        "request_id": job["request_id"],
    }
    if event is CallbackEvent.FAILED:
        assert outcome.category is not None and outcome.code is not None
        body["error"] = {
            "category": outcome.category.value,
            "code": outcome.code,
            "message": _FAILURE_MESSAGES[outcome.code],
        }
    elif event is CallbackEvent.SAMPLES_READY:
        count = int(job["parameters"].get("samples") or 1)
        body["samples"] = [
            _asset(job, f"s{n}", f"sample-{n}", asset_base_url, publish)
            for n in range(1, count + 1)
        ]
    else:
        body["asset"] = _asset(job, "final", "final", asset_base_url, publish)
    return body


def _asset(
    job: dict[str, Any],
    asset_id: str,
    stem: str,
    base_url: str,
    publish: AssetPublisher | None = None,
) -> dict[str, Any]:
    parameters = job["parameters"]
    extension = str(parameters["format"]).lower()
    path = f"{job['request_id']}/{job['job_id']}/{stem}.{extension}"
    if publish is not None:
        url = publish(path, int(parameters["width"]), int(parameters["height"]))
    else:
        url = f"{base_url.rstrip('/')}/{path}"
    return {
        "id": asset_id,
        "url": url,
        "width": parameters["width"],
        "height": parameters["height"],
        "format": parameters["format"],
    }


def callback_url(job: dict[str, Any], event: CallbackEvent, per_stage_routes: bool) -> str:
    """``callback.url`` (the one generic endpoint), or the stage route when asked for."""
    callback = job["callback"]
    if not per_stage_routes:
        return str(callback["url"])
    key = {
        CallbackEvent.SAMPLES_READY: "samples_url",
        CallbackEvent.FINAL_READY: "final_url",
        CallbackEvent.FAILED: "error_url",
    }[event]
    return str(callback[key])

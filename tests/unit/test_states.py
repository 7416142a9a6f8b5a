"""The state machine: the one table of transitions, and terminal states that never change."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from creativeflow.domain.errors import InvalidTransition
from creativeflow.domain.jobs import FailureCategory
from creativeflow.domain.model import Failure, GenerationRequest
from creativeflow.domain.states import TERMINAL, TRANSITIONS, Status, can_transition

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def a_request(status: Status = Status.PENDING) -> GenerationRequest:
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


HAPPY_PATH = [
    Status.VALIDATING_CREDITS,
    Status.PUBLISHING_TO_QUEUE,
    Status.PROCESSING_SAMPLES,
    Status.AWAITING_SELECTION,
    Status.PROCESSING_FINAL,
    Status.COMPLETED,
]


def test_the_happy_path_is_allowed_and_every_step_is_recorded_with_its_time() -> None:
    request = a_request()
    request.start(NOW)
    for status in HAPPY_PATH:
        request.transition(status, NOW)
    assert request.status is Status.COMPLETED
    assert [h["status"] for h in request.history] == ["PENDING", *[s.value for s in HAPPY_PATH]]
    assert all(h["at"] == NOW.isoformat() for h in request.history)


def test_regeneration_goes_back_to_processing_samples() -> None:
    assert can_transition(Status.AWAITING_SELECTION, Status.PROCESSING_SAMPLES)


@pytest.mark.parametrize("terminal", sorted(TERMINAL))
def test_terminal_states_never_change(terminal: Status) -> None:
    request = a_request(terminal)
    for target in Status:
        with pytest.raises(InvalidTransition):
            request.transition(target, NOW)
    assert request.status is terminal


def test_a_skipped_step_is_refused_with_both_states_named() -> None:
    request = a_request(Status.PROCESSING_SAMPLES)
    with pytest.raises(InvalidTransition) as refused:
        request.transition(Status.COMPLETED, NOW)
    assert refused.value.extensions == {
        "current_status": "PROCESSING_SAMPLES",
        "target_status": "COMPLETED",
    }
    assert refused.value.status_code == 409
    assert request.status is Status.PROCESSING_SAMPLES


def test_every_state_has_a_row_in_the_table() -> None:
    assert set(TRANSITIONS) == set(Status)


def test_every_non_terminal_state_can_end() -> None:
    for status in Status:
        if not status.is_terminal:
            assert TRANSITIONS[status] & TERMINAL, status


def test_a_content_rejection_ends_in_content_rejected_and_a_platform_failure_in_failed() -> None:
    rejected = a_request(Status.PROCESSING_SAMPLES)
    rejected.fail(Failure(FailureCategory.CONTENT_POLICY, "nsfw", "no"), NOW)
    failed = a_request(Status.PROCESSING_FINAL)
    failed.fail(Failure(FailureCategory.PLATFORM, "provider_timeout", "slow"), NOW)
    assert rejected.status is Status.CONTENT_REJECTED
    assert failed.status is Status.FAILED

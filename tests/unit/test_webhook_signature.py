"""Standard Webhooks signatures: what is accepted and what is refused."""

from __future__ import annotations

import base64

import pytest

from creativeflow.webhook_signature import SignatureError, sign, signed_headers, verify

BODY = b'{"event":"samples_ready","job_id":"j"}'
NOW = 1_800_000_000


def test_a_correct_signature_is_accepted() -> None:
    headers = signed_headers("s3cret", "msg_1", NOW, BODY)
    verified = verify(["s3cret"], headers, BODY, now=NOW)
    assert verified.msg_id == "msg_1"


def test_any_current_secret_may_sign_during_a_rotation() -> None:
    headers = signed_headers("new-secret", "msg_1", NOW, BODY)
    assert verify(["old-secret", "new-secret"], headers, BODY, now=NOW).msg_id == "msg_1"


def test_several_offered_signatures_are_each_tried() -> None:
    headers = signed_headers("right", "msg_1", NOW, BODY)
    headers["webhook-signature"] = f"v1,AAAA {headers['webhook-signature']}"
    assert verify(["right"], headers, BODY, now=NOW)


def test_whsec_secrets_are_used_decoded() -> None:
    raw = b"0123456789abcdef0123456789abcdef"
    secret = "whsec_" + base64.b64encode(raw).decode()
    assert sign(secret, "m", NOW, BODY) != sign(raw.decode(), "m", NOW, b"other")
    assert sign(secret, "m", NOW, BODY) == sign(secret, "m", NOW, BODY)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda h, b: ({**h, "webhook-signature": "v1,AAAA"}, b), "no valid signature"),
        (lambda h, b: (h, b + b" "), "no valid signature"),
        (lambda h, b: ({**h, "webhook-id": "msg_2"}, b), "no valid signature"),
        (lambda h, b: ({k: v for k, v in h.items() if k != "webhook-signature"}, b), "missing"),
        (lambda h, b: ({k: v for k, v in h.items() if k != "webhook-id"}, b), "missing"),
        (lambda h, b: ({**h, "webhook-timestamp": "soon"}, b), "not an integer"),
    ],
    ids=["wrong-signature", "tampered-body", "other-id", "unsigned", "no-id", "bad-timestamp"],
)
def test_forged_callbacks_are_refused(change, why) -> None:  # type: ignore[no-untyped-def]
    headers, body = change(signed_headers("s3cret", "msg_1", NOW, BODY), BODY)
    with pytest.raises(SignatureError, match=why):
        verify(["s3cret"], headers, body, now=NOW)


@pytest.mark.parametrize("skew", [-301, 301])
def test_stale_or_future_timestamps_are_refused(skew: int) -> None:
    headers = signed_headers("s3cret", "msg_1", NOW + skew, BODY)
    with pytest.raises(SignatureError, match="tolerance"):
        verify(["s3cret"], headers, BODY, now=NOW)


def test_a_signature_with_another_secret_is_refused() -> None:
    headers = signed_headers("attacker", "msg_1", NOW, BODY)
    with pytest.raises(SignatureError):
        verify(["s3cret"], headers, BODY, now=NOW)


def test_a_queued_result_may_be_older_than_the_tolerance_up_to_its_max_age() -> None:
    """A result that waited in the results queue: older than five minutes, within the age the
    webhook-id is kept for, it is accepted; beyond that age it is stale."""
    waited = signed_headers("s3cret", "msg_1", NOW - 3600, BODY)
    assert verify(["s3cret"], waited, BODY, now=NOW, max_age_seconds=7200).msg_id == "msg_1"
    with pytest.raises(SignatureError, match="tolerance"):
        verify(["s3cret"], waited, BODY, now=NOW)
    with pytest.raises(SignatureError, match="tolerance"):
        verify(["s3cret"], waited, BODY, now=NOW, max_age_seconds=1800)


def test_a_max_age_never_lets_a_timestamp_from_the_future_in() -> None:
    future = signed_headers("s3cret", "msg_1", NOW + 301, BODY)
    with pytest.raises(SignatureError, match="tolerance"):
        verify(["s3cret"], future, BODY, now=NOW, max_age_seconds=7200)

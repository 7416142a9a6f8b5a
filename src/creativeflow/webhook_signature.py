"""Standard Webhooks signatures, as n8n sends them and the orchestrator checks them.

``webhook-signature`` is a space-separated list of ``v1,<base64 HMAC-SHA256>`` over
``"{webhook-id}.{webhook-timestamp}.{raw body}"``. A secret given as ``whsec_<base64>`` is used
decoded, as the Standard Webhooks libraries do; any other secret is used as its UTF-8 bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass

SIGNATURE_VERSION = "v1"


class SignatureError(Exception):
    """Why a callback was refused; the text is safe to return to the caller."""


def _key(secret: str) -> bytes:
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        except binascii.Error:
            pass
    return secret.encode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value for one secret."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def signed_headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
        "content-type": "application/json",
    }


@dataclass(frozen=True, slots=True)
class VerifiedWebhook:
    msg_id: str
    timestamp: int


def verify(
    secrets: Iterable[str],
    headers: dict[str, str],
    body: bytes,
    now: int,
    tolerance_seconds: int = 300,
    max_age_seconds: int | None = None,
) -> VerifiedWebhook:
    """Check one callback against every current secret; raise :class:`SignatureError` if none fits.

    ``headers`` must have lower-case keys. The timestamp may be ``tolerance_seconds`` off either
    way; ``max_age_seconds`` allows an older one (a message that waited in a queue), never a
    later one.
    """
    msg_id = headers.get("webhook-id", "")
    raw_timestamp = headers.get("webhook-timestamp", "")
    raw_signatures = headers.get("webhook-signature", "")
    if not msg_id or not raw_timestamp or not raw_signatures:
        raise SignatureError("missing webhook-id, webhook-timestamp or webhook-signature header")
    if len(msg_id) > 255:
        raise SignatureError("webhook-id is too long")
    try:
        timestamp = int(raw_timestamp)
    except ValueError:
        raise SignatureError("webhook-timestamp is not an integer") from None
    oldest = max(tolerance_seconds, max_age_seconds or 0)
    if timestamp - now > tolerance_seconds or now - timestamp > oldest:
        raise SignatureError("webhook-timestamp is outside the tolerance")
    offered = [s.encode() for s in raw_signatures.split() if s.startswith(f"{SIGNATURE_VERSION},")]
    for secret in secrets:
        expected = sign(secret, msg_id, timestamp, body).encode()
        # compare against every offered signature so timing does not reveal which one matched
        if any(hmac.compare_digest(expected, candidate) for candidate in offered):
            return VerifiedWebhook(msg_id=msg_id, timestamp=timestamp)
    raise SignatureError("no valid signature")

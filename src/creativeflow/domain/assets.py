"""Stored assets: our own copy of each sample and final asset n8n reported.

Provider URLs expire within the hour; what a user paid for must not. Each asset of a
``samples_ready`` or ``final_ready`` callback gets a :class:`StoredAsset`, written in the
callback's transaction as ``pending`` and copied to object storage after the commit; the user is
then served short-lived signed links to our copy, and the provider's URL only until it is stored.

A copy is leased while it runs (``next_attempt_at`` is the end of the lease), so the recovery
sweep takes only copies nobody is working on; a failed attempt is retried with a growing delay
until ``max_attempts``, then the asset is ``failed`` (the provider's URL is all there is).
Once stored, the final asset is recorded in Odoo; ``odoo_record_id`` says it was.
"""

from __future__ import annotations

import enum
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from .events import EventType, RequestEvent
from .jobs import Stage
from .model import GenerationRequest, Sample


class AssetRole(enum.StrEnum):
    SAMPLE = "sample"
    FINAL = "final"


class RecordStatus(enum.StrEnum):
    """The final asset's record in Odoo (samples are not recorded)."""

    PENDING = "pending"  # stored, not recorded yet: recorded next, or retried by the sweep
    RECORDED = "recorded"
    REFUSED = "refused"  # Odoo refused it (a business code): an operator's to look at


class CopyStatus(enum.StrEnum):
    PENDING = "pending"  # not in storage yet: a copy is running or due
    STORED = "stored"  # in storage, checksum and size known
    FAILED = "failed"  # given up: the provider's URL is all there is


# the content types the service keeps, by the file signature that proves them (WebP: a RIFF
# container whose form type, at byte 8, is WEBP)
IMAGE_SIGNATURES: tuple[tuple[str, bytes], ...] = (
    ("image/png", b"\x89PNG\r\n\x1a\n"),
    ("image/jpeg", b"\xff\xd8\xff"),
    ("image/tiff", b"II*\x00"),
    ("image/tiff", b"MM\x00*"),
)
# the longest head a signature needs
SIGNATURE_BYTES = 12


def sniff_image_type(head: bytes) -> str | None:
    """The image type the first bytes of a file prove, or ``None`` (an HTML error page served
    with a 200, say)."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    for content_type, signature in IMAGE_SIGNATURES:
        if head.startswith(signature):
            return content_type
    return None


_UNSAFE_KEY_CHARACTERS = re.compile(r"[^A-Za-z0-9_-]+")
MAX_KEY_PART = 40


def key_part(text: str) -> str:
    """An id reported by n8n made safe for a storage key: letters, digits, ``_`` and ``-``
    only, at most 40 characters; ``asset`` when nothing is left."""
    return _UNSAFE_KEY_CHARACTERS.sub("_", text).strip("_")[:MAX_KEY_PART] or "asset"


def storage_key(request_id: str, role: AssetRole, asset_id: str, unique: str) -> str:
    """``generations/<request>/<role>/<asset id>-<unique>``: the request id is ours (a UUID),
    the asset id is n8n's, sanitised; ``unique`` keeps two rounds of samples with the same ids
    apart."""
    return f"generations/{key_part(request_id)}/{role.value}/{key_part(asset_id)}-{unique}"


@dataclass(slots=True)
class StoredAsset:
    id: str
    request_id: str
    user_id: str
    job_id: str
    role: AssetRole
    asset_id: str
    source_url: str
    storage_key: str
    created_at: datetime
    next_attempt_at: datetime
    format: str | None = None
    width: int | None = None
    height: int | None = None
    status: CopyStatus = CopyStatus.PENDING
    attempts: int = 0
    last_error: str | None = None
    checksum_sha256: str | None = None
    byte_size: int | None = None
    content_type: str | None = None
    stored_at: datetime | None = None
    # the final asset's record in Odoo, once recorded (samples are not recorded)
    odoo_record_id: str | None = None
    recorded_at: datetime | None = None
    record_status: RecordStatus | None = None
    record_attempts: int = 0
    next_record_at: datetime | None = None
    record_error: str | None = None

    @property
    def is_stored(self) -> bool:
        return self.status is CopyStatus.STORED

    def claim(self, now: datetime, lease: timedelta) -> None:
        """Start an attempt: nobody else takes this copy until the lease ends."""
        self.attempts += 1
        self.next_attempt_at = now + lease

    def stored(
        self, *, checksum_sha256: str, byte_size: int, content_type: str, at: datetime
    ) -> None:
        self.status = CopyStatus.STORED
        self.checksum_sha256 = checksum_sha256
        self.byte_size = byte_size
        self.content_type = content_type
        self.stored_at = at
        self.last_error = None

    def attempt_failed(self, error: str, retry_at: datetime | None) -> None:
        """An attempt did not store the asset: try again at ``retry_at``, or give up."""
        self.last_error = error[:500]
        if retry_at is None:
            self.status = CopyStatus.FAILED
        else:
            self.next_attempt_at = retry_at

    # --- the record in Odoo (the final asset only) -----------------------------------------

    def owes_record(self) -> bool:
        return self.role is AssetRole.FINAL

    def claim_record(self, now: datetime, lease: timedelta) -> None:
        """Start recording it in Odoo: nobody else tries until the lease ends."""
        self.record_status = RecordStatus.PENDING
        self.record_attempts += 1
        self.next_record_at = now + lease

    def recorded(self, odoo_record_id: str, at: datetime) -> None:
        self.record_status = RecordStatus.RECORDED
        self.odoo_record_id = odoo_record_id
        self.recorded_at = at
        self.next_record_at = None
        self.record_error = None

    def record_failed(self, error: str, retry_at: datetime) -> None:
        self.record_error = error[:500]
        self.next_record_at = retry_at

    def record_refused(self, error: str) -> None:
        self.record_status = RecordStatus.REFUSED
        self.record_error = error[:500]
        self.next_record_at = None


@dataclass(frozen=True, slots=True)
class AssetLink:
    """Where a user downloads an asset now: our signed link (until ``expires_at``) once it is
    stored, else the provider's URL."""

    url: str
    stored: bool
    expires_at: datetime | None = None
    checksum_sha256: str | None = None
    byte_size: int | None = None
    # the provider's URL the stored copy was made from
    source_url: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The fields a view or a notification shows of it."""
        return {
            "url": self.url,
            "url_source": "storage" if self.stored else "provider",
            "url_expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "checksum_sha256": self.checksum_sha256,
            "byte_size": self.byte_size,
        }


LinkKey = tuple[str, str]  # (role, asset id)


def link_for(links: dict[LinkKey, AssetLink], role: AssetRole, sample: Sample) -> AssetLink:
    """Our link to ``sample`` when it is stored (and is the copy of this very URL), else the
    provider's URL."""
    found = links.get((role.value, sample.id))
    if found is not None and found.source_url == sample.url:
        return found
    return AssetLink(url=sample.url, stored=False)


def plan_copies(
    request: GenerationRequest,
    job_id: str,
    stage: Stage,
    now: datetime,
    lease: timedelta,
) -> list[StoredAsset]:
    """The copies a ``samples_ready`` or ``final_ready`` callback owes: one per asset the
    request now shows, each already claimed by the copy that starts after the commit."""
    if stage is Stage.FINAL:
        role, assets = AssetRole.FINAL, [request.final_asset] if request.final_asset else []
    else:
        role, assets = AssetRole.SAMPLE, list(request.samples)
    planned = []
    for sample in assets:
        unique = uuid.uuid4().hex[:12]
        asset = StoredAsset(
            id=str(uuid.uuid4()),
            request_id=request.id,
            user_id=request.user_id,
            job_id=job_id,
            role=role,
            asset_id=sample.id,
            source_url=sample.url,
            storage_key=storage_key(request.id, role, sample.id, unique),
            created_at=now,
            next_attempt_at=now,
            format=sample.format,
            width=sample.width,
            height=sample.height,
        )
        asset.claim(now, lease)
        planned.append(asset)
    return planned


def asset_stored_event(asset: StoredAsset, correlation_id: str, at: datetime) -> RequestEvent:
    """The event a stored copy adds to its request's journal, in the transaction that saves it:
    its role and the asset as n8n reported it (its id and the provider's URL; the link to our
    copy is made each time the event is sent)."""
    return RequestEvent(
        request_id=asset.request_id,
        user_id=asset.user_id,
        type=EventType.ASSET_STORED,
        at=at,
        correlation_id=correlation_id,
        data={
            "role": asset.role.value,
            "asset": {"id": asset.asset_id, "url": asset.source_url},
        },
    )

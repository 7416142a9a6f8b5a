"""The tracking tables: lightweight request tracking, the credit-operation journal, jobs,
received callbacks and idempotency keys. Odoo keeps the money; these rows keep our side of it."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSONB,
        list[Any]: JSONB,
        datetime: DateTime(timezone=True),
    }


class GenerationRequestRow(Base):
    __tablename__ = "generation_requests"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(32))
    prompt: Mapped[str] = mapped_column(Text)
    format: Mapped[str] = mapped_column(String(16))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    samples_count: Mapped[int] = mapped_column(Integer)
    style_guidance: Mapped[str | None] = mapped_column(Text)
    brand_elements: Mapped[dict[str, Any] | None]
    project_id: Mapped[str | None] = mapped_column(String(128))
    # no longer written nor read (Odoo grants the model, recorded in ``model``); rows from
    # before keep what they asked for
    advanced_model: Mapped[bool] = mapped_column(Boolean, default=False)
    model: Mapped[str | None] = mapped_column(String(128))
    # the creative brief (template, tone, cultural adaptation, target platform); null: none given
    brief: Mapped[dict[str, Any] | None]
    regeneration_count: Mapped[int] = mapped_column(Integer, default=0)
    samples: Mapped[list[Any]]
    selected_sample_id: Mapped[str | None] = mapped_column(String(128))
    final_asset: Mapped[dict[str, Any] | None]
    failure_category: Mapped[str | None] = mapped_column(String(32))
    failure_code: Mapped[str | None] = mapped_column(String(64))
    failure_message: Mapped[str | None] = mapped_column(Text)
    correlation_id: Mapped[str] = mapped_column(String(128))
    history: Mapped[list[Any]]
    deadline_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (
        Index("ix_generation_requests_user_created", "user_id", "created_at"),
        Index("ix_generation_requests_status_deadline", "status", "deadline_at"),
        # the submit counts a user's unfinished requests for the tier's cap
        Index(
            "ix_generation_requests_user_in_flight",
            "user_id",
            postgresql_where=text(
                "status IN ('PENDING', 'VALIDATING_CREDITS', 'PUBLISHING_TO_QUEUE', "
                "'PROCESSING_SAMPLES', 'PROCESSING_FINAL')"
            ),
        ),
    )


class CreditOperationRow(Base):
    """The journal: written before each Odoo call, settled after it."""

    __tablename__ = "credit_operations"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("generation_requests.id"))
    user_id: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int | None] = mapped_column(Integer)
    ledger_entry_id: Mapped[int | None] = mapped_column(BigInteger)
    refusal_code: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (
        UniqueConstraint(
            "request_id", "action", "kind", name="uq_credit_operations_request_action_kind"
        ),
        Index("ix_credit_operations_status", "status", "updated_at"),
    )


class JobRow(Base):
    __tablename__ = "generation_jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("generation_requests.id"), index=True)
    stage: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(32))
    attempt: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    deadline_at: Mapped[datetime]
    payload: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (
        # the oldest job awaiting its callback, read by the metrics at each scrape
        Index(
            "ix_generation_jobs_published",
            "updated_at",
            postgresql_where=text("status = 'published'"),
        ),
    )


class ReceivedCallbackRow(Base):
    """Every callback that passed the signature check, by its ``webhook-id``: a replay is
    refused."""

    __tablename__ = "received_callbacks"

    webhook_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    job_id: Mapped[str | None] = mapped_column(String(36), index=True)
    request_id: Mapped[str | None] = mapped_column(String(36))
    event: Mapped[str] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(String(32))
    received_at: Mapped[datetime]


class IdempotencyKeyRow(Base):
    __tablename__ = "idempotency_keys"

    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    scope: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    request_id: Mapped[str | None] = mapped_column(String(36), index=True)
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class GenerationEventRow(Base):
    """What happened to each request, in commit order: the live status stream reads it from an
    event's id on, and the events exchange's outbox is its rows still ``publish_pending``."""

    __tablename__ = "generation_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("generation_requests.id"))
    user_id: Mapped[str] = mapped_column(String(128))
    type: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]]
    correlation_id: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime]
    # the three result events go to the events exchange too: true until it confirmed them
    publish_pending: Mapped[bool] = mapped_column(Boolean, default=False)
    published_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_generation_events_request", "request_id", "id"),
        Index(
            "ix_generation_events_unpublished",
            "id",
            postgresql_where=text("publish_pending"),
        ),
    )


class StoredAssetRow(Base):
    """Our copy of each asset n8n reported, in object storage: pending until stored (the sweep
    takes rows whose ``next_attempt_at`` passed), then its checksum and size; the final asset's
    Odoo record once recorded."""

    __tablename__ = "stored_assets"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("generation_requests.id"))
    user_id: Mapped[str] = mapped_column(String(128))
    job_id: Mapped[str] = mapped_column(String(36))
    role: Mapped[str] = mapped_column(String(16))
    asset_id: Mapped[str] = mapped_column(String(255))
    source_url: Mapped[str] = mapped_column(Text)
    storage_key: Mapped[str] = mapped_column(String(255), unique=True)
    format: Mapped[str | None] = mapped_column(String(32))
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime]
    checksum_sha256: Mapped[str | None] = mapped_column(String(64))
    byte_size: Mapped[int | None] = mapped_column(BigInteger)
    content_type: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    stored_at: Mapped[datetime | None]
    odoo_record_id: Mapped[str | None] = mapped_column(String(64))
    recorded_at: Mapped[datetime | None]
    # the final asset's record in Odoo: pending (due at next_record_at), recorded, refused
    record_status: Mapped[str | None] = mapped_column(String(16))
    record_attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_record_at: Mapped[datetime | None]
    record_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("job_id", "asset_id", name="uq_stored_assets_job_asset"),
        Index("ix_stored_assets_request", "request_id", "created_at"),
        Index(
            "ix_stored_assets_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
        Index(
            "ix_stored_assets_record_due",
            "next_record_at",
            postgresql_where=text("record_status = 'pending'"),
        ),
    )


class ClientWebhookRow(Base):
    """A client's webhook for one request: its events after ``delivered_through`` are posted to
    ``url`` in order. ``active`` until delivery gives up (``failed``); a delivery in progress
    holds ``lease_until``, so replicas never post one event concurrently."""

    __tablename__ = "client_webhooks"

    request_id: Mapped[str] = mapped_column(ForeignKey("generation_requests.id"), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128))
    url: Mapped[str] = mapped_column(Text)
    delivered_through: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime]
    lease_until: Mapped[datetime | None]
    created_at: Mapped[datetime]

    __table_args__ = (
        Index(
            "ix_client_webhooks_due",
            "next_attempt_at",
            postgresql_where=text("status = 'active'"),
        ),
    )

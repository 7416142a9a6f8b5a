"""what happened to each request: the live status stream and the events exchange's outbox

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "generation_events",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("request_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("data", postgresql.JSONB(), nullable=False),
        sa.Column("correlation_id", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("publish_pending", sa.Boolean(), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["generation_requests.id"],
            name="fk_generation_events_request_id_generation_requests",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_generation_events"),
    )
    op.create_index(
        "ix_generation_events_request", "generation_events", ["request_id", "id"], unique=False
    )
    op.create_index(
        "ix_generation_events_unpublished",
        "generation_events",
        ["id"],
        unique=False,
        postgresql_where=sa.text("publish_pending"),
    )


def downgrade() -> None:
    op.drop_index("ix_generation_events_unpublished", table_name="generation_events")
    op.drop_index("ix_generation_events_request", table_name="generation_events")
    op.drop_table("generation_events")

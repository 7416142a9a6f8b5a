"""a partial index for counting a user's requests in flight

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# the transient states of domain/states.py, fixed here as they were when this ran
TRANSIENT = (
    "PENDING",
    "VALIDATING_CREDITS",
    "PUBLISHING_TO_QUEUE",
    "PROCESSING_SAMPLES",
    "PROCESSING_FINAL",
)


def upgrade() -> None:
    op.create_index(
        "ix_generation_requests_user_in_flight",
        "generation_requests",
        ["user_id"],
        postgresql_where=sa.text(
            "status IN (" + ", ".join(f"'{status}'" for status in TRANSIENT) + ")"
        ),
    )


def downgrade() -> None:
    op.drop_index("ix_generation_requests_user_in_flight", table_name="generation_requests")

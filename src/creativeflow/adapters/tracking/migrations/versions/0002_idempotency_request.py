"""idempotency keys remember the request they created

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("idempotency_keys", sa.Column("request_id", sa.String(length=36), nullable=True))
    op.create_index(
        op.f("ix_idempotency_keys_request_id"), "idempotency_keys", ["request_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_idempotency_keys_request_id"), table_name="idempotency_keys")
    op.drop_column("idempotency_keys", "request_id")

"""the final asset's record in Odoo: its status, attempts and retry time

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("stored_assets", sa.Column("record_status", sa.String(length=16), nullable=True))
    op.add_column(
        "stored_assets",
        sa.Column("record_attempts", sa.Integer(), nullable=False, server_default="0"),
    )
    op.alter_column("stored_assets", "record_attempts", server_default=None)
    op.add_column(
        "stored_assets", sa.Column("next_record_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("stored_assets", sa.Column("record_error", sa.Text(), nullable=True))
    # final assets stored before this revision are recorded by the next sweep
    op.execute(
        "UPDATE stored_assets SET record_status = 'pending', next_record_at = stored_at "
        "WHERE role = 'final' AND status = 'stored' AND odoo_record_id IS NULL"
    )
    op.create_index(
        "ix_stored_assets_record_due",
        "stored_assets",
        ["next_record_at"],
        unique=False,
        postgresql_where=sa.text("record_status = 'pending'"),
    )


def downgrade() -> None:
    op.drop_index("ix_stored_assets_record_due", table_name="stored_assets")
    for column in ("record_error", "next_record_at", "record_attempts", "record_status"):
        op.drop_column("stored_assets", column)

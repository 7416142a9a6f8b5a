"""a partial index for the oldest job awaiting its callback (a metric read at each scrape)

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_generation_jobs_published",
        "generation_jobs",
        ["updated_at"],
        postgresql_where=sa.text("status = 'published'"),
    )


def downgrade() -> None:
    op.drop_index("ix_generation_jobs_published", table_name="generation_jobs")

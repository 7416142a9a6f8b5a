"""the creative brief of a request: template, tone, cultural adaptation, target platform

Revision ID: 0006
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # nullable, no default: adding it rewrites nothing, and earlier requests have no brief
    op.add_column("generation_requests", sa.Column("brief", postgresql.JSONB(), nullable=True))


def downgrade() -> None:
    op.drop_column("generation_requests", "brief")

"""Each product image remembers the feed URL it was downloaded from (source attribution; NULL for local files).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("product_images") as batch:
        batch.add_column(sa.Column("source_url", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("product_images") as batch:
        batch.drop_column("source_url")

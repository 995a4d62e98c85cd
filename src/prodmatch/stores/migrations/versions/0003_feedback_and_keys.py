"""The query log names each answer (query_id), its HTTP request (request_id) and a kept query photo (photo_sha);
feedback on answers; API keys (hashed).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("query_log") as batch:
        batch.add_column(sa.Column("query_id", sa.String(64), nullable=False, server_default=""))
        batch.add_column(sa.Column("request_id", sa.String(128), nullable=False, server_default=""))
        batch.add_column(sa.Column("photo_sha", sa.String(64), nullable=True))
        batch.create_index("ix_query_log_query_id", ["query_id"])
    op.create_table(
        "feedback",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("query_id", sa.String(64), nullable=False, index=True),
        sa.Column(
            "product_id", sa.String, sa.ForeignKey("products.id", ondelete="CASCADE"), nullable=False, index=True
        ),
        sa.Column("is_match", sa.Boolean, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("salt", sa.String(64), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("api_keys")
    op.drop_table("feedback")
    with op.batch_alter_table("query_log") as batch:
        batch.drop_index("ix_query_log_query_id")
        batch.drop_column("photo_sha")
        batch.drop_column("request_id")
        batch.drop_column("query_id")

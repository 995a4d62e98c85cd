"""The schema as first released: products, their images and vectors, duplicate links, the query log, settings.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSON_DOCUMENT = sa.JSON().with_variant(JSONB(), "postgresql")
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "products",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("attributes", JSON_DOCUMENT, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("embed_hash", sa.String(64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "product_images",
        sa.Column("product_id", sa.String(), sa.ForeignKey("products.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("position", sa.Integer(), primary_key=True),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=True),
    )
    op.create_index("ix_product_images_sha256", "product_images", ["sha256"])
    op.create_table(
        "vectors",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("product_id", sa.String(), sa.ForeignKey("products.id", ondelete="CASCADE"), nullable=False),
        sa.Column("space", sa.String(16), nullable=False),
        sa.Column("image_sha", sa.String(64), nullable=True),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
    )
    op.create_index("ix_vectors_product_id", "vectors", ["product_id"])
    op.create_index("ix_vectors_space", "vectors", ["space"])
    op.create_index("ix_vectors_product_space", "vectors", ["product_id", "space"])
    op.create_table(
        "near_duplicates",
        sa.Column("sha_a", sa.String(64), primary_key=True),
        sa.Column("sha_b", sa.String(64), primary_key=True),
    )
    op.create_table(
        "query_log",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("modality", sa.String(16), nullable=False),
        sa.Column("query_hash", sa.String(80), nullable=False),
        sa.Column("top_ids", JSON_DOCUMENT, nullable=False),
        sa.Column("top_scores", JSON_DOCUMENT, nullable=False),
        sa.Column("took_ms", sa.Float(), nullable=False),
        sa.Column("is_match", sa.Boolean(), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
    )
    op.create_index("ix_query_log_at", "query_log", ["at"])
    op.create_table(
        "meta",
        sa.Column("key", sa.String(), primary_key=True),
        sa.Column("value", JSON_DOCUMENT, nullable=True),
    )


def downgrade() -> None:
    for table in ("meta", "query_log", "near_duplicates", "vectors", "product_images", "products"):
        op.drop_table(table)

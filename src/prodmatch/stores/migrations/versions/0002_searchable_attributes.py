"""products.search: the normalised attributes every filter runs on (GIN-indexed on PostgreSQL), backfilled.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from prodmatch.stores.filters import searchable

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JSON_DOCUMENT = sa.JSON().with_variant(JSONB(), "postgresql")
BATCH = 1000


def upgrade() -> None:
    with op.batch_alter_table("products") as batch:
        batch.add_column(sa.Column("search", JSON_DOCUMENT, nullable=True))
    _backfill()
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(
            "ix_products_search",
            "products",
            ["search"],
            postgresql_using="gin",
            postgresql_ops={"search": "jsonb_path_ops"},
        )


def _backfill() -> None:
    """Compute search from attributes for the products already stored, a batch at a time."""
    products = sa.table(
        "products",
        sa.column("id", sa.String()),
        sa.column("attributes", JSON_DOCUMENT),
        sa.column("search", JSON_DOCUMENT),
    )
    bind = op.get_bind()
    last = ""
    while True:
        query = sa.select(products.c.id, products.c.attributes).where(products.c.id > last).order_by(products.c.id)
        rows = bind.execute(query.limit(BATCH)).all()
        if not rows:
            return
        for row in rows:
            update = products.update().where(products.c.id == row.id)
            bind.execute(update.values(search=searchable(row.attributes or {})))
        last = rows[-1].id


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_products_search", "products")
    with op.batch_alter_table("products") as batch:
        batch.drop_column("search")

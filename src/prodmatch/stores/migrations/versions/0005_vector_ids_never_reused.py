"""SQLite hands out vector ids that are never reused (AUTOINCREMENT).

Without it, SQLite gives a new row the highest id + 1, so deleting the product holding the highest vector id and
adding another gave the new vector the deleted one's id: a process still caching "id -> product" (another
`prodmatch serve` over the same data dir, a vector engine that missed the delete) then names the wrong product.
PostgreSQL's sequences never reuse ids; nothing changes there.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    _recreate_vectors(autoincrement=True)


def downgrade() -> None:
    _recreate_vectors(autoincrement=False)


def _recreate_vectors(autoincrement: bool) -> None:
    # The table is copied with its ids; SQLite's sqlite_sequence then starts after the highest copied id.
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table("vectors", recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}):
        pass

"""The SQL metadata store's tables as ORM rows (the Alembic migrations in prodmatch/stores/migrations own their
schema; these mirror the newest revision)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from prodmatch.stores.sql_engine import JSON_DOCUMENT, ROW_ID, Base


class ProductRow(Base):
    __tablename__ = "products"
    id: Mapped[str] = mapped_column(String, primary_key=True)
    name: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text, default="")
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON_DOCUMENT, default=dict)
    # filters.searchable(attributes): what filters run on (a GIN index on PostgreSQL, made by the migration)
    search: Mapped[dict[str, Any] | None] = mapped_column(JSON_DOCUMENT, default=dict, nullable=True)
    content_hash: Mapped[str] = mapped_column(String(64), default="")
    embed_hash: Mapped[str] = mapped_column(String(64), default="")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    images: Mapped[list[ImageRow]] = relationship(
        cascade="all, delete-orphan", order_by="ImageRow.position", lazy="selectin"
    )


class ImageRow(Base):
    __tablename__ = "product_images"
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    signature: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    source_url: Mapped[str | None] = mapped_column(Text, nullable=True)


class VectorRow(Base):
    __tablename__ = "vectors"
    # (product, space) is how matching reads vectors back for exact re-scoring; SQLite never reuses an id
    # (migration 0005 says why)
    __table_args__ = (Index("ix_vectors_product_space", "product_id", "space"), {"sqlite_autoincrement": True})
    id: Mapped[int] = mapped_column(ROW_ID, primary_key=True, autoincrement=True)
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), index=True)
    space: Mapped[str] = mapped_column(String(16), index=True)
    image_sha: Mapped[str | None] = mapped_column(String(64), nullable=True)
    vector: Mapped[bytes] = mapped_column(LargeBinary)


class NearDuplicateRow(Base):
    """Two different image files of the same photo (re-encoded, re-saved): a duplicate listing."""

    __tablename__ = "near_duplicates"
    sha_a: Mapped[str] = mapped_column(String(64), primary_key=True)
    sha_b: Mapped[str] = mapped_column(String(64), primary_key=True)


class MetaRow(Base):
    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String, primary_key=True)
    value: Mapped[Any] = mapped_column(JSON_DOCUMENT)

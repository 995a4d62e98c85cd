"""MetadataStore on SQLAlchemy 2: SQLite by default; the same code serves PostgreSQL.

The schema is owned by the Alembic migrations in prodmatch/stores/migrations: opening a store upgrades its
database to the newest revision, so an existing deployment (or data dir) follows the code."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    create_engine,
    delete,
    event,
    func,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, sessionmaker

from prodmatch.stores.common import chunks, merge_groups, same_photo, stack_vectors
from prodmatch.stores.filters import Filter, searchable
from prodmatch.stores.records import ImageRef, Product, ProductUpsert, QueryLogEntry, VectorChanges, VectorLabel
from prodmatch.stores.sql_filters import filter_condition

_IN_CHUNK = 900  # SQLite's default limit on bound parameters is 999
JSON_DOCUMENT = JSON().with_variant(JSONB(), "postgresql")  # JSONB: indexable (GIN) and compared by value
# 64-bit ids on PostgreSQL; on SQLite only "INTEGER PRIMARY KEY" is the auto-incrementing rowid (64-bit anyway)
ROW_ID = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


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


class VectorRow(Base):
    __tablename__ = "vectors"
    # (product, space) is how matching reads vectors back for exact re-scoring
    __table_args__ = (Index("ix_vectors_product_space", "product_id", "space"),)
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


class QueryLogRow(Base):
    """One answered match request."""

    __tablename__ = "query_log"
    id: Mapped[int] = mapped_column(ROW_ID, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    modality: Mapped[str] = mapped_column(String(16))
    query_hash: Mapped[str] = mapped_column(String(80))
    top_ids: Mapped[list[str]] = mapped_column(JSON_DOCUMENT)
    top_scores: Mapped[list[float]] = mapped_column(JSON_DOCUMENT)
    took_ms: Mapped[float]
    is_match: Mapped[bool | None]
    confidence: Mapped[float | None]


class MetaRow(Base):
    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String, primary_key=True)
    value: Mapped[Any] = mapped_column(JSON_DOCUMENT)


def _enable_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets readers (a server) run while an ingest writes; foreign keys make deletes cascade."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def sqlalchemy_url(url: str) -> str:
    """postgresql://... means psycopg 3 (SQLAlchemy's default PostgreSQL driver is psycopg2)."""
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str) -> Engine:
    # pre-ping: a connection the server dropped (restart, failover) is replaced instead of failing a request
    engine = create_engine(sqlalchemy_url(url), pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _enable_sqlite_pragmas)
    return engine


class SqlMetadataStore:
    """Products, images, vectors and settings in one SQL database; each upsert batch is one transaction."""

    def __init__(self, url: str) -> None:
        from prodmatch.stores.migrations import upgrade

        self.url = url
        self.engine = make_engine(url)
        upgrade(self.engine)
        self._session = sessionmaker(self.engine, expire_on_commit=False)
        self._dialect = self.engine.dialect.name

    def _conditions(self, filters: Sequence[Filter]) -> list[Any]:
        return [filter_condition(ProductRow.search, item, self._dialect) for item in filters]

    def close(self) -> None:
        self.engine.dispose()

    def get_meta(self, key: str) -> Any:
        with self._session() as session:
            row = session.get(MetaRow, key)
            return None if row is None else row.value

    def set_meta(self, key: str, value: Any) -> None:
        with self._session.begin() as session:
            session.merge(MetaRow(key=key, value=value))

    def hashes(self, ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        """(content hash, embed hash) of the stored products among IDS."""
        found: dict[str, tuple[str, str]] = {}
        with self._session() as session:
            for chunk in chunks(list(ids), _IN_CHUNK):
                query = select(ProductRow.id, ProductRow.content_hash, ProductRow.embed_hash)
                rows = session.execute(query.where(ProductRow.id.in_(chunk)))
                found.update({row.id: (row.content_hash, row.embed_hash) for row in rows})
        return found

    def upsert(self, items: Sequence[ProductUpsert]) -> VectorChanges:
        """Insert or replace products with their vectors, atomically for the whole batch."""
        changes = VectorChanges()
        with self._session.begin() as session:
            for item in items:
                changes.merge(self._replace(session, item))
            self._remember_keys(session, items)
        return changes

    def _replace(self, session: Session, item: ProductUpsert) -> VectorChanges:
        product = item.product
        label = VectorLabel(product.id, searchable(product.attributes))
        keep_vectors = item.vectors is None
        changes = (
            self._relabel_vectors(session, product.id, label)
            if keep_vectors
            else VectorChanges(removed=self._drop_vectors(session, [product.id]))
        )
        row = session.get(ProductRow, product.id) or ProductRow(id=product.id)
        known_signatures = {image.sha256: image.signature for image in row.images or []}
        row.name, row.text, row.attributes = product.name, product.text, product.attributes
        row.search = label.search
        row.content_hash, row.embed_hash = product.content_hash, product.embed_hash
        row.updated_at = datetime.now(UTC)
        row.images = [
            ImageRow(
                position=i,
                path=ref.path,
                sha256=ref.sha256,
                signature=ref.signature or known_signatures.get(ref.sha256),
            )
            for i, ref in enumerate(product.images)
        ]
        session.add(row)
        session.flush()
        for space_vectors in item.vectors or []:
            shas: list[str | None] = [*space_vectors.image_shas] if space_vectors.image_shas else []
            shas += [None] * (len(space_vectors.vectors) - len(shas))
            new_rows = [
                VectorRow(
                    product_id=product.id, space=space_vectors.space, image_sha=sha, vector=v.astype("<f4").tobytes()
                )
                for v, sha in zip(space_vectors.vectors, shas, strict=True)
            ]
            session.add_all(new_rows)
            session.flush()
            ids = np.array([r.id for r in new_rows], dtype=np.int64)
            labels = dict.fromkeys(ids.tolist(), label)
            changes.merge(VectorChanges(added={space_vectors.space: (ids, space_vectors.vectors)}, labels=labels))
        return changes

    def _relabel_vectors(self, session: Session, product_id: str, label: VectorLabel) -> VectorChanges:
        """The kept vectors of a product whose metadata changed: indexes that filter by label must follow."""
        changes = VectorChanges()
        for row in session.execute(select(VectorRow.id, VectorRow.space).where(VectorRow.product_id == product_id)):
            changes.relabelled.setdefault(row.space, []).append(row.id)
            changes.labels[row.id] = label
        return changes

    def _drop_vectors(self, session: Session, product_ids: list[str]) -> dict[str, list[int]]:
        rows = session.execute(select(VectorRow.id, VectorRow.space).where(VectorRow.product_id.in_(product_ids)))
        removed: dict[str, list[int]] = {}
        for row in rows:
            removed.setdefault(row.space, []).append(row.id)
        session.execute(delete(VectorRow).where(VectorRow.product_id.in_(product_ids)))
        return removed

    def _remember_keys(self, session: Session, items: Sequence[ProductUpsert]) -> None:
        row = session.get(MetaRow, "attribute_keys")
        keys = set(row.value if row else [])
        keys.update(key for item in items for key in item.product.attributes)
        session.merge(MetaRow(key="attribute_keys", value=sorted(keys)))

    def delete(self, product_id: str) -> VectorChanges:
        with self._session.begin() as session:
            removed = self._drop_vectors(session, [product_id])
            session.execute(delete(ProductRow).where(ProductRow.id == product_id))
        return VectorChanges(removed=removed)

    def get(self, ids: Sequence[str]) -> dict[str, Product]:
        found: dict[str, Product] = {}
        with self._session() as session:
            for chunk in chunks(list(ids), _IN_CHUNK):
                rows = session.scalars(select(ProductRow).where(ProductRow.id.in_(chunk)))
                found.update({row.id: _to_product(row) for row in rows})
        return found

    def page(self, offset: int, limit: int, filters: Sequence[Filter] = ()) -> list[Product]:
        query = select(ProductRow).where(*self._conditions(filters)).order_by(ProductRow.id)
        with self._session() as session:
            return [_to_product(row) for row in session.scalars(query.offset(offset).limit(limit))]

    def count(self, filters: Sequence[Filter] = ()) -> int:
        query = select(func.count()).select_from(ProductRow).where(*self._conditions(filters))
        with self._session() as session:
            return int(session.scalar(query) or 0)

    def attribute_keys(self) -> set[str]:
        return set(self.get_meta("attribute_keys") or [])

    def vector_ids(self, space: str, filters: Sequence[Filter] = ()) -> np.ndarray:
        query = select(VectorRow.id).where(VectorRow.space == space)
        if filters:
            query = query.join(ProductRow, ProductRow.id == VectorRow.product_id).where(*self._conditions(filters))
        with self._session() as session:
            return np.fromiter(session.scalars(query), dtype=np.int64)

    def vector_owners(self, vector_ids: Sequence[int]) -> dict[int, str]:
        owners: dict[int, str] = {}
        with self._session() as session:
            for chunk in chunks([int(i) for i in vector_ids], _IN_CHUNK):
                rows = session.execute(select(VectorRow.id, VectorRow.product_id).where(VectorRow.id.in_(chunk)))
                owners.update({row.id: row.product_id for row in rows})
        return owners

    def product_vectors(self, product_ids: Sequence[str], space: str) -> tuple[list[str], np.ndarray]:
        owners: list[str] = []
        blobs: list[bytes] = []
        with self._session() as session:
            for chunk in chunks(list(product_ids), _IN_CHUNK):
                query = select(VectorRow.product_id, VectorRow.vector).where(
                    VectorRow.space == space, VectorRow.product_id.in_(chunk)
                )
                for row in session.execute(query):
                    owners.append(row.product_id)
                    blobs.append(row.vector)
        return owners, stack_vectors(blobs)

    def iter_vectors(
        self, space: str, ids: np.ndarray, batch: int = 4096
    ) -> Iterator[tuple[np.ndarray, np.ndarray, list[VectorLabel]]]:
        """The stored vectors with the given ids and their labels, in batches: what an index is repaired from."""
        with self._session() as session:
            for start in range(0, len(ids), batch):
                chunk = [int(i) for i in ids[start : start + batch]]
                query = (
                    select(VectorRow.id, VectorRow.vector, VectorRow.product_id, ProductRow.search)
                    .join(ProductRow, ProductRow.id == VectorRow.product_id)
                    .where(VectorRow.space == space, VectorRow.id.in_(chunk))
                )
                rows = session.execute(query).all()
                labels = [VectorLabel(r.product_id, r.search or searchable({})) for r in rows]
                yield np.array([r.id for r in rows], dtype=np.int64), stack_vectors([r.vector for r in rows]), labels

    def link_near_duplicates(self, pairs: Sequence[tuple[int, int]], max_difference: float) -> int:
        """Record image pairs (by vector id) whose thumbnail signatures differ by at most MAX_DIFFERENCE
        (mean absolute level): the same photo saved twice. Returns the number of new links."""
        with self._session.begin() as session:
            vector_ids = {int(i) for pair in pairs for i in pair}
            sha_of: dict[int, str | None] = {
                row.id: row.image_sha
                for row in session.execute(
                    select(VectorRow.id, VectorRow.image_sha).where(VectorRow.id.in_(vector_ids))
                )
            }
            signature_of = {
                row.sha256: row.signature
                for row in session.execute(
                    select(ImageRow.sha256, ImageRow.signature).where(ImageRow.sha256.in_(set(sha_of.values())))
                )
            }
            links = {
                tuple(sorted((first, second)))
                for a, b in pairs
                if (first := sha_of.get(a)) and (second := sha_of.get(b)) and first != second
            }
            new = [
                NearDuplicateRow(sha_a=a, sha_b=b)
                for a, b in links
                if same_photo(signature_of.get(a), signature_of.get(b), max_difference)
                and session.get(NearDuplicateRow, (a, b)) is None
            ]
            session.add_all(new)
        return len(new)

    def append_queries(self, entries: Sequence[QueryLogEntry]) -> None:
        with self._session.begin() as session:
            session.add_all(QueryLogRow(**asdict(entry)) for entry in entries)

    def recent_queries(self, limit: int) -> list[QueryLogEntry]:
        """The newest LIMIT entries, oldest first."""
        query = select(QueryLogRow).order_by(QueryLogRow.id.desc()).limit(limit)
        with self._session() as session:
            rows = list(session.scalars(query))
        return [
            QueryLogEntry(r.at, r.modality, r.query_hash, r.top_ids, r.top_scores, r.took_ms, r.is_match, r.confidence)
            for r in reversed(rows)
        ]

    def duplicate_groups(self, include_near: bool = True) -> list[list[str]]:
        """Groups of products listing the same photo: byte-identical files, and (include_near) re-saved copies."""
        shared = (
            select(ImageRow.sha256).group_by(ImageRow.sha256).having(func.count(func.distinct(ImageRow.product_id)) > 1)
        )
        with self._session() as session:
            links = [
                (row.sha_a, row.sha_b)
                for row in session.execute(select(NearDuplicateRow.sha_a, NearDuplicateRow.sha_b))
            ]
            linked = {sha for pair in links for sha in pair} if include_near else set()
            owners: dict[str, set[str]] = {}
            query = select(ImageRow.sha256, ImageRow.product_id).where(
                or_(ImageRow.sha256.in_(shared), ImageRow.sha256.in_(linked))
            )
            for row in session.execute(query):
                owners.setdefault(row.sha256, set()).add(row.product_id)
        groups = [members for members in owners.values() if len(members) > 1]
        groups += [owners.get(a, set()) | owners.get(b, set()) for a, b in links if include_near]
        return merge_groups(group for group in groups if len(group) > 1)


def _to_product(row: ProductRow) -> Product:
    images = [ImageRef(image.path, image.sha256, image.signature) for image in row.images]
    return Product(row.id, row.name, row.text, dict(row.attributes or {}), images, row.content_hash, row.embed_hash)

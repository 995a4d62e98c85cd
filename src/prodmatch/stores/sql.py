"""MetadataStore on SQLAlchemy 2: SQLite by default; the same code serves PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import (
    JSON,
    ColumnElement,
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
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, sessionmaker

from prodmatch.stores.filters import Filter
from prodmatch.stores.records import ImageRef, Product, ProductUpsert, QueryLogEntry, VectorChanges

_IN_CHUNK = 900  # SQLite's default limit on bound parameters is 999


class Base(DeclarativeBase):
    pass


class ProductRow(Base):
    __tablename__ = "products"
    id: Mapped[str] = mapped_column(String, primary_key=True)
    name: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text, default="")
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
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
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
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
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    modality: Mapped[str] = mapped_column(String(16))
    query_hash: Mapped[str] = mapped_column(String(80))
    top_ids: Mapped[list[str]] = mapped_column(JSON)
    top_scores: Mapped[list[float]] = mapped_column(JSON)
    took_ms: Mapped[float]
    is_match: Mapped[bool | None]
    confidence: Mapped[float | None]


class MetaRow(Base):
    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String, primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)


def _enable_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets readers (a server) run while an ingest writes; foreign keys make deletes cascade."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str) -> Engine:
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _enable_sqlite_pragmas)
    return engine


def attribute_condition(item: Filter) -> ColumnElement[bool]:
    """SQL for one filter on the JSON attributes column; strings compare case-insensitively."""
    field = ProductRow.attributes[item.key]
    number = item.number
    if item.op in ("=", "!="):
        same = func.lower(field.as_string()) == item.value.lower()
        if number is not None:
            same = or_(same, field.as_float() == number)
        return same if item.op == "=" else ~same
    value = field.as_float()
    compare: dict[str, ColumnElement[bool]] = {
        ">=": value >= number,
        "<=": value <= number,
        ">": value > number,
        "<": value < number,
    }
    return compare[item.op]


class SqlMetadataStore:
    """Products, images, vectors and settings in one SQL database; each upsert batch is one transaction."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        Base.metadata.create_all(self.engine)
        self._session = sessionmaker(self.engine, expire_on_commit=False)

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
            for chunk in _chunks(list(ids)):
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
        keep_vectors = item.vectors is None
        changes = VectorChanges() if keep_vectors else VectorChanges(removed=self._drop_vectors(session, [product.id]))
        row = session.get(ProductRow, product.id) or ProductRow(id=product.id)
        known_signatures = {image.sha256: image.signature for image in row.images or []}
        row.name, row.text, row.attributes = product.name, product.text, product.attributes
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
            changes.merge(VectorChanges(added={space_vectors.space: (ids, space_vectors.vectors)}))
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
            for chunk in _chunks(list(ids)):
                rows = session.scalars(select(ProductRow).where(ProductRow.id.in_(chunk)))
                found.update({row.id: _to_product(row) for row in rows})
        return found

    def page(self, offset: int, limit: int, filters: Sequence[Filter] = ()) -> list[Product]:
        query = select(ProductRow).where(*map(attribute_condition, filters)).order_by(ProductRow.id)
        with self._session() as session:
            return [_to_product(row) for row in session.scalars(query.offset(offset).limit(limit))]

    def count(self, filters: Sequence[Filter] = ()) -> int:
        query = select(func.count()).select_from(ProductRow).where(*map(attribute_condition, filters))
        with self._session() as session:
            return int(session.scalar(query) or 0)

    def attribute_keys(self) -> set[str]:
        return set(self.get_meta("attribute_keys") or [])

    def vector_ids(self, space: str, filters: Sequence[Filter] = ()) -> np.ndarray:
        query = select(VectorRow.id).where(VectorRow.space == space)
        if filters:
            query = query.join(ProductRow, ProductRow.id == VectorRow.product_id).where(
                *map(attribute_condition, filters)
            )
        with self._session() as session:
            return np.fromiter(session.scalars(query), dtype=np.int64)

    def vector_owners(self, vector_ids: Sequence[int]) -> dict[int, str]:
        owners: dict[int, str] = {}
        with self._session() as session:
            for chunk in _chunks([int(i) for i in vector_ids]):
                rows = session.execute(select(VectorRow.id, VectorRow.product_id).where(VectorRow.id.in_(chunk)))
                owners.update({row.id: row.product_id for row in rows})
        return owners

    def product_vectors(self, product_ids: Sequence[str], space: str) -> tuple[list[str], np.ndarray]:
        owners: list[str] = []
        blobs: list[bytes] = []
        with self._session() as session:
            for chunk in _chunks(list(product_ids)):
                query = select(VectorRow.product_id, VectorRow.vector).where(
                    VectorRow.space == space, VectorRow.product_id.in_(chunk)
                )
                for row in session.execute(query):
                    owners.append(row.product_id)
                    blobs.append(row.vector)
        return owners, _stack(blobs)

    def iter_vectors(self, space: str, ids: np.ndarray, batch: int = 4096) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The stored vectors with the given ids, in batches: what an index is repaired from."""
        with self._session() as session:
            for start in range(0, len(ids), batch):
                chunk = [int(i) for i in ids[start : start + batch]]
                rows = session.execute(
                    select(VectorRow.id, VectorRow.vector).where(VectorRow.space == space, VectorRow.id.in_(chunk))
                ).all()
                yield np.array([r.id for r in rows], dtype=np.int64), _stack([r.vector for r in rows])

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
                if _same_photo(signature_of.get(a), signature_of.get(b), max_difference)
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
        return _merge_groups(group for group in groups if len(group) > 1)


def _same_photo(first: bytes | None, second: bytes | None, max_difference: float) -> bool:
    if not first or not second or len(first) != len(second):
        return False
    difference = np.abs(np.frombuffer(first, np.uint8).astype(np.int16) - np.frombuffer(second, np.uint8))
    return float(difference.mean()) <= max_difference


def _to_product(row: ProductRow) -> Product:
    images = [ImageRef(image.path, image.sha256, image.signature) for image in row.images]
    return Product(row.id, row.name, row.text, dict(row.attributes or {}), images, row.content_hash, row.embed_hash)


def _stack(blobs: list[bytes]) -> np.ndarray:
    if not blobs:
        return np.zeros((0, 0), dtype=np.float32)
    return np.vstack([np.frombuffer(blob, dtype="<f4") for blob in blobs]).astype(np.float32)


def _chunks(values: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(values), _IN_CHUNK):
        yield values[start : start + _IN_CHUNK]


def _merge_groups(groups: Any) -> list[list[str]]:
    """Union overlapping groups (A~B by one image, B~C by another) into sorted, disjoint groups."""
    merged: list[set[str]] = []
    for group in groups:
        overlapping = [m for m in merged if m & group]
        union = set(group).union(*overlapping)
        merged = [m for m in merged if not (m & group)] + [union]
    return sorted(sorted(group) for group in merged)

"""MetadataStore on SQLAlchemy 2: SQLite by default; the same code serves PostgreSQL.

The schema is owned by the Alembic migrations in prodmatch/stores/migrations: opening a store upgrades its
database to the newest revision, so an existing deployment (or data dir) follows the code."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import (
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    delete,
    func,
    or_,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship, sessionmaker

from prodmatch.batching import chunks
from prodmatch.stores.common import stack_vectors
from prodmatch.stores.duplicates import Link, duplicate_groups, near_duplicate_links
from prodmatch.stores.filters import Filter, searchable
from prodmatch.stores.records import ImageRef, Product, ProductUpsert, VectorChanges, VectorLabel
from prodmatch.stores.sql_activity import SqlActivity
from prodmatch.stores.sql_engine import JSON_DOCUMENT, ROW_ID, Base, make_engine
from prodmatch.stores.sql_filters import sql_conditions

_IN_CHUNK = 900  # SQLite's default limit on bound parameters is 999


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


class SqlMetadataStore(SqlActivity):
    """Products, images, vectors and settings in one SQL database; each upsert batch is one transaction."""

    def __init__(self, url: str) -> None:
        from prodmatch.stores.migrations import upgrade

        self.url = url
        self.engine = make_engine(url)
        upgrade(self.engine)
        self._session = sessionmaker(self.engine, expire_on_commit=False)
        self._dialect = self.engine.dialect.name

    def _conditions(self, filters: Sequence[Filter]) -> list[Any]:
        return sql_conditions(ProductRow.search, filters, self._dialect)

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
            ids = [item.product.id for item in items]
            loaded = _load_products(session, ids)
            # Each id once (an ingest batch): old vectors are dropped, and stored rows found, for the whole batch in
            # a query per chunk, not three queries per product (new products found nothing either way).
            stored = {row.id: row for row in loaded} if len(set(ids)) == len(ids) else None
            if stored is not None:
                replaced = [item.product.id for item in items if item.vectors is not None]
                changes.merge(VectorChanges(removed=self._drop_vectors(session, replaced)))
            for item in items:
                changes.merge(self._replace(session, item, stored))
            del loaded
            self._remember_keys(session, items)
        return changes

    def _replace(self, session: Session, item: ProductUpsert, stored: dict[str, ProductRow] | None) -> VectorChanges:
        """One product's rows; STORED (the batch's stored rows, vectors already dropped) or None: look it up."""
        product = item.product
        label = VectorLabel(product.id, searchable(product.attributes))
        if item.vectors is None:
            changes = self._relabel_vectors(session, product.id, label)
        elif stored is None:
            changes = VectorChanges(removed=self._drop_vectors(session, [product.id]))
        else:
            changes = VectorChanges()
        found = session.get(ProductRow, product.id) if stored is None else stored.get(product.id)
        row = found or ProductRow(id=product.id)
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
                source_url=ref.source_url,
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
        removed: dict[str, list[int]] = {}
        for chunk in chunks(product_ids, _IN_CHUNK):
            rows = session.execute(select(VectorRow.id, VectorRow.space).where(VectorRow.product_id.in_(chunk)))
            for row in rows:
                removed.setdefault(row.space, []).append(row.id)
            session.execute(delete(VectorRow).where(VectorRow.product_id.in_(chunk)))
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
        """The stored products among IDS: one Core query per chunk, products and images joined (no ORM objects:
        this runs on every match)."""
        found: dict[str, Product] = {}
        with self.engine.connect() as connection:
            for chunk in chunks(list(ids), _IN_CHUNK):
                found.update(_products(connection.execute(_PRODUCT_QUERY.where(ProductRow.id.in_(chunk)))))
        return found

    def page(self, offset: int, limit: int, filters: Sequence[Filter] = ()) -> list[Product]:
        ids = select(ProductRow.id).where(*self._conditions(filters)).order_by(ProductRow.id).offset(offset)
        with self.engine.connect() as connection:
            chosen = list(connection.scalars(ids.limit(limit)))
            found = _products(connection.execute(_PRODUCT_QUERY.where(ProductRow.id.in_(chosen)))) if chosen else {}
        # a product deleted between the two queries is left out of the page, not an error
        return [found[product_id] for product_id in chosen if product_id in found]

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
        with self.engine.connect() as connection:
            for chunk in chunks([int(i) for i in vector_ids], _IN_CHUNK):
                rows = connection.execute(select(VectorRow.id, VectorRow.product_id).where(VectorRow.id.in_(chunk)))
                owners.update({row.id: row.product_id for row in rows})
        return owners

    def product_vectors(self, product_ids: Sequence[str], space: str) -> tuple[list[str], np.ndarray]:
        owners: list[str] = []
        blobs: list[bytes] = []
        with self.engine.connect() as connection:  # Core, not the ORM: this is on the query path
            for chunk in chunks(list(product_ids), _IN_CHUNK):
                query = select(VectorRow.product_id, VectorRow.vector).where(
                    VectorRow.space == space, VectorRow.product_id.in_(chunk)
                )
                for row in connection.execute(query):
                    owners.append(row.product_id)
                    blobs.append(row.vector)
        return owners, stack_vectors(blobs)

    def iter_vectors(
        self, space: str, ids: np.ndarray, batch: int = 4096
    ) -> Iterator[tuple[np.ndarray, np.ndarray, list[VectorLabel]]]:
        """The stored vectors with the given ids and their labels, in batches: what an index is repaired from."""
        with self._session() as session:
            for chunk in chunks(ids.tolist(), batch):
                query = (
                    select(VectorRow.id, VectorRow.vector, VectorRow.product_id, ProductRow.search)
                    .join(ProductRow, ProductRow.id == VectorRow.product_id)
                    .where(VectorRow.space == space, VectorRow.id.in_(chunk))
                )
                rows = session.execute(query).all()
                labels = [VectorLabel(r.product_id, r.search or searchable({})) for r in rows]
                yield np.array([r.id for r in rows], dtype=np.int64), stack_vectors([r.vector for r in rows]), labels

    def link_near_duplicates(self, pairs: Sequence[tuple[int, int]], max_difference: float) -> int:
        """Record image pairs (by vector id) that are the same photo saved twice (duplicates.py decides which).
        Returns the number of new links."""
        with self._session.begin() as session:
            links = near_duplicate_links(
                pairs, max_difference, lambda ids: _image_shas(session, ids), lambda shas: _signatures(session, shas)
            )
            known = _known_links(session, links)
            new = [NearDuplicateRow(sha_a=a, sha_b=b) for a, b in dict.fromkeys(links) if (a, b) not in known]
            session.add_all(new)
        return len(new)

    def products_with_image(self, sha256: str) -> list[str]:
        """Ids of the products that list the image with this SHA-256."""
        with self._session() as session:
            query = select(ImageRow.product_id).where(ImageRow.sha256 == sha256).distinct()
            return sorted(session.scalars(query))

    def duplicate_groups(self, include_near: bool = True) -> list[list[str]]:
        """Groups of products listing the same photo: byte-identical files, and (include_near) re-saved copies."""
        shared = ImageRow.sha256.in_(
            select(ImageRow.sha256).group_by(ImageRow.sha256).having(func.count(func.distinct(ImageRow.product_id)) > 1)
        )
        linked = ImageRow.sha256.in_(select(NearDuplicateRow.sha_a).union(select(NearDuplicateRow.sha_b)))
        with self._session() as session:
            links: list[Link] = []
            if include_near:
                rows = session.execute(select(NearDuplicateRow.sha_a, NearDuplicateRow.sha_b))
                links = [(row.sha_a, row.sha_b) for row in rows]
            owners: dict[str, set[str]] = {}
            query = select(ImageRow.sha256, ImageRow.product_id).where(or_(shared, linked) if include_near else shared)
            for row in session.execute(query):
                owners.setdefault(row.sha256, set()).add(row.product_id)
        return duplicate_groups(owners, links)


def _load_products(session: Session, ids: list[str]) -> list[ProductRow]:
    """The stored rows among IDS (images too) in one query per chunk, so that the session.get of each product in
    an upsert batch finds it in the identity map instead of querying (a 1M ingest: 2M queries fewer). The session
    holds rows weakly: the caller keeps the returned list alive for the batch."""
    rows: list[ProductRow] = []
    for chunk in chunks(list(dict.fromkeys(ids)), _IN_CHUNK):
        rows.extend(session.scalars(select(ProductRow).where(ProductRow.id.in_(chunk))))
    return rows


def _known_links(session: Session, links: Sequence[Link]) -> set[Link]:
    """Which of LINKS are stored already: one query per chunk, not one per link."""
    known: set[Link] = set()
    for chunk in chunks(sorted({a for a, _ in links}), _IN_CHUNK):
        query = select(NearDuplicateRow.sha_a, NearDuplicateRow.sha_b).where(NearDuplicateRow.sha_a.in_(chunk))
        known.update((row.sha_a, row.sha_b) for row in session.execute(query))
    return known


def _image_shas(session: Session, vector_ids: list[int]) -> dict[int, str | None]:
    found: dict[int, str | None] = {}
    for chunk in chunks(vector_ids, _IN_CHUNK):
        rows = session.execute(select(VectorRow.id, VectorRow.image_sha).where(VectorRow.id.in_(chunk)))
        found.update({row.id: row.image_sha for row in rows})
    return found


def _signatures(session: Session, shas: list[str]) -> dict[str, bytes | None]:
    found: dict[str, bytes | None] = {}
    for chunk in chunks(shas, _IN_CHUNK):
        query = select(ImageRow.sha256, ImageRow.signature).where(
            ImageRow.sha256.in_(chunk), ImageRow.signature.is_not(None)
        )
        found.update({row.sha256: row.signature for row in session.execute(query)})
    return found


_PRODUCT_QUERY = (
    select(
        ProductRow.id,
        ProductRow.name,
        ProductRow.text,
        ProductRow.attributes,
        ProductRow.content_hash,
        ProductRow.embed_hash,
        ImageRow.path,
        ImageRow.sha256,
        ImageRow.signature,
        ImageRow.source_url,
    )
    .outerjoin(ImageRow, ImageRow.product_id == ProductRow.id)
    .order_by(ProductRow.id, ImageRow.position)
)


def _products(rows: Iterable[Any]) -> dict[str, Product]:
    """Products from _PRODUCT_QUERY's rows: one row per image (or one with no image), images in order."""
    found: dict[str, Product] = {}
    for row in rows:
        product = found.get(row.id)
        if product is None:
            attributes = dict(row.attributes or {})
            product = Product(row.id, row.name, row.text, attributes, [], row.content_hash, row.embed_hash)
            found[row.id] = product
        if row.sha256 is not None:
            product.images.append(ImageRef(row.path, row.sha256, row.signature, row.source_url))
    return found

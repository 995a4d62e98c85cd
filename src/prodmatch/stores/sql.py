"""MetadataStore on SQLAlchemy 2: SQLite by default; the same code serves PostgreSQL.

The schema is owned by the Alembic migrations in prodmatch/stores/migrations: opening a store upgrades its
database to the newest revision, so an existing deployment (or data dir) follows the code."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, cast

import numpy as np
from sqlalchemy import Table, delete, func, insert, or_, select, text
from sqlalchemy.orm import Session, sessionmaker

from prodmatch.batching import chunks
from prodmatch.stores.common import stack_vectors
from prodmatch.stores.duplicates import Link, duplicate_groups, near_duplicate_links
from prodmatch.stores.filters import Filter, searchable
from prodmatch.stores.records import ImageRef, Product, ProductUpsert, VectorChanges, VectorLabel
from prodmatch.stores.sql_activity import SqlActivity
from prodmatch.stores.sql_engine import make_engine
from prodmatch.stores.sql_filters import sql_conditions
from prodmatch.stores.sql_rows import ImageRow, MetaRow, NearDuplicateRow, ProductRow, VectorRow

_IN_CHUNK = 900  # SQLite's default limit on bound parameters is 999
_VECTORS = cast(Table, VectorRow.__table__)  # the vector table for Core statements (bulk inserts)


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
        """Insert or replace products with their vectors, atomically for the whole batch (the last write of an id
        wins). A few statements per 900 ids and two flushes, not several per product (~5x less CPU at 1,000 a batch)."""
        latest = {item.product.id: item for item in items}
        with self._session.begin() as session:
            loaded = {row.id: row for row in _load_products(session, list(latest))}
            labels = {pid: VectorLabel(pid, searchable(item.product.attributes)) for pid, item in latest.items()}
            changes = VectorChanges(
                removed=_drop_vectors(session, [p for p, i in latest.items() if i.vectors is not None])
            )
            changes.merge(_relabel_vectors(session, {p: labels[p] for p, i in latest.items() if i.vectors is None}))
            for pid, item in latest.items():
                session.add(_product_row(loaded.get(pid) or ProductRow(id=pid), item.product, labels[pid]))
            session.flush()  # the products first: vector rows reference them (foreign keys are on)
            changes.merge(_add_vectors(session, list(latest.values()), labels))
            self._remember_keys(session, items)
        return changes

    def _remember_keys(self, session: Session, items: Sequence[ProductUpsert]) -> None:
        row = session.get(MetaRow, "attribute_keys")
        keys = set(row.value if row else [])
        keys.update(key for item in items for key in item.product.attributes)
        session.merge(MetaRow(key="attribute_keys", value=sorted(keys)))

    def delete(self, product_id: str) -> VectorChanges:
        with self._session.begin() as session:
            removed = _drop_vectors(session, [product_id])
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

    def catalog_stamp(self) -> str:
        query = select(func.count(), func.max(ProductRow.updated_at)).select_from(ProductRow)
        with self._session() as session:
            count, latest = session.execute(query).one()
        return f"{count}:{latest}"

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


def _product_row(row: ProductRow, product: Product, label: VectorLabel) -> ProductRow:
    """ROW (stored or new) made to hold PRODUCT; a photo it had already keeps its signature."""
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
    return row


def _add_vectors(session: Session, items: list[ProductUpsert], labels: dict[str, VectorLabel]) -> VectorChanges:
    """The new vector rows of ITEMS, inserted in bulk (one statement per batch of rows, not one per row)."""
    rows: list[dict[str, Any]] = []
    arrays: dict[str, list[np.ndarray]] = {}
    for item in items:
        for space_vectors in item.vectors or []:
            shas: list[str | None] = [*(space_vectors.image_shas or [])]
            shas += [None] * (len(space_vectors.vectors) - len(shas))
            rows.extend(
                {"product_id": item.product.id, "space": space_vectors.space, "image_sha": sha, "vector": _blob(v)}
                for v, sha in zip(space_vectors.vectors, shas, strict=True)
            )
            arrays.setdefault(space_vectors.space, []).append(space_vectors.vectors)
    ids = _insert_vectors(session, rows) if rows else np.zeros(0, np.int64)
    changes = VectorChanges()
    for space in arrays:
        in_space = np.array([row["space"] == space for row in rows])
        changes.added[space] = (ids[in_space], np.vstack(arrays[space]))
    changes.labels.update({int(i): labels[row["product_id"]] for i, row in zip(ids, rows, strict=True)})
    return changes


def _insert_vectors(session: Session, rows: list[dict[str, Any]]) -> np.ndarray:
    """Insert ROWS into the vector table; their new ids, in order. PostgreSQL returns them in the order of the
    rows (a sorted RETURNING); SQLite cannot, and SQLAlchemy then inserts row by row, so on SQLite the ids are
    the ones AUTOINCREMENT would give (one past the largest ever handed out, in order: a deleted id is never given
    again, migration 0005), chosen while this transaction holds the database's write lock (the products were
    written first), so no other writer can take them meanwhile. SQLite records the largest inserted id itself."""
    if session.get_bind().dialect.name == "sqlite":
        handed_out = session.scalar(text("SELECT seq FROM sqlite_sequence WHERE name = 'vectors'"))
        first = max(int(session.scalar(select(func.max(VectorRow.id))) or 0), int(handed_out or 0)) + 1
        ids = np.arange(first, first + len(rows), dtype=np.int64)
        rows_with_ids = [{**row, "id": int(i)} for i, row in zip(ids, rows, strict=True)]
        session.connection().execute(insert(_VECTORS), rows_with_ids)  # Core: one executemany, no ORM objects
        return ids
    returning = insert(_VECTORS).returning(_VECTORS.c.id, sort_by_parameter_order=True)
    return np.fromiter(session.connection().scalars(returning, rows), dtype=np.int64, count=len(rows))


def _blob(vector: np.ndarray) -> bytes:
    return vector.astype("<f4").tobytes()


def _relabel_vectors(session: Session, labels: dict[str, VectorLabel]) -> VectorChanges:
    """The kept vectors of products whose metadata changed (LABELS by product id): indexes that filter by label
    must follow."""
    changes = VectorChanges()
    for chunk in chunks(list(labels), _IN_CHUNK):
        query = select(VectorRow.id, VectorRow.space, VectorRow.product_id).where(VectorRow.product_id.in_(chunk))
        for row in session.execute(query):
            changes.relabelled.setdefault(row.space, []).append(row.id)
            changes.labels[row.id] = labels[row.product_id]
    return changes


def _drop_vectors(session: Session, product_ids: list[str]) -> dict[str, list[int]]:
    """Delete the vectors of PRODUCT_IDS; their ids by space."""
    removed: dict[str, list[int]] = {}
    for chunk in chunks(product_ids, _IN_CHUNK):
        rows = session.execute(select(VectorRow.id, VectorRow.space).where(VectorRow.product_id.in_(chunk)))
        for row in rows:
            removed.setdefault(row.space, []).append(row.id)
        session.execute(delete(VectorRow).where(VectorRow.product_id.in_(chunk)))
    return removed


def _load_products(session: Session, ids: list[str]) -> list[ProductRow]:
    """The stored rows among IDS (images too) in one query per chunk, not one query per product of an upsert batch
    (a 1M ingest: 2M queries fewer)."""
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

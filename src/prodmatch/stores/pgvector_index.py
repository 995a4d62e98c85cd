"""VectorIndex on PostgreSQL with pgvector: one table per vector space, an HNSW index (inner product) and a GIN
index on the labels, so a filtered search is one SQL query.

Like the FAISS index, search is exact below `exact_threshold` vectors and uses HNSW above it (IndexSettings.kind
overrides). The HNSW index is built by save() once the table is big enough: building it over loaded rows is
many times faster than growing it row by row (3,000 rows: 2.9 s built vs ~11 ms per row inserted), and an
ingest calls save() periodically and at its end. After that pgvector maintains it on every insert.

pgvector's HNSW scan stops after ef_search candidates and applies the WHERE clause afterwards, so a narrow
filter can come back short; the search then repeats as an exact scan, which never misses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Index,
    MetaData,
    Table,
    Text,
    bindparam,
    delete,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.exc import ProgrammingError

from prodmatch.batching import chunks
from prodmatch.config import IndexSettings
from prodmatch.errors import StoreConfigError
from prodmatch.stores.protocols import SearchScope
from prodmatch.stores.records import VectorLabel
from prodmatch.stores.sql_engine import make_engine
from prodmatch.stores.sql_filters import sql_conditions
from prodmatch.stores.urls import postgres_url, prefix_of

_WRITE_BATCH = 1000
_MAX_EF_SEARCH = 1000  # pgvector's limit
_BUILD_MEMORY = "1GB"  # an HNSW build that fits in memory is several times faster than one that spills


class PgVectorIndex:
    """One vector space's vectors in the table {prefix}_vectors_{space}."""

    def __init__(self, url: str, space: str, dims: int, settings: IndexSettings) -> None:
        self.settings = settings
        self.dims = dims
        self.engine = make_engine(postgres_url(url))
        name = f"{prefix_of(url)}_vectors_{space}"
        self.table = Table(
            name,
            MetaData(),
            Column("id", BigInteger, primary_key=True, autoincrement=False),
            Column("product_id", Text, nullable=False),
            Column("search", JSONB, nullable=False),
            Column("embedding", Vector(dims), nullable=False),
            Index(f"ix_{name}_search", "search", postgresql_using="gin", postgresql_ops={"search": "jsonb_path_ops"}),
        )
        with self.engine.begin() as connection:
            self._create(connection)
        # made after the table exists: an Index on its column joins the table's DDL, and this one is built by
        # save() only once the table is big enough
        self._hnsw = Index(
            f"ix_{name}_hnsw",
            self.table.c.embedding,
            postgresql_using="hnsw",
            postgresql_with={"m": settings.hnsw_m, "ef_construction": settings.hnsw_ef_construction},
            postgresql_ops={"embedding": "vector_ip_ops"},
        )

    def _create(self, connection: Connection) -> None:
        try:
            connection.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
        except ProgrammingError as exc:
            raise StoreConfigError(
                "pgvector is not enabled in this database and this user may not enable it; "
                "run `CREATE EXTENSION vector;` in it as a superuser"
            ) from exc
        self.table.create(connection, checkfirst=True)
        stored = connection.execute(
            text(
                "SELECT atttypmod FROM pg_attribute WHERE attrelid = CAST(:table AS regclass) AND attname = 'embedding'"
            ),
            {"table": self.table.name},
        ).scalar_one()
        if stored != self.dims:
            raise StoreConfigError(f"table {self.table.name} holds {stored}-d vectors; this model's are {self.dims}-d")

    def _has_hnsw(self) -> bool:
        query = text("SELECT 1 FROM pg_indexes WHERE tablename = :table AND indexname = :index")
        with self.engine.connect() as connection:
            found = connection.execute(query, {"table": self.table.name, "index": self._hnsw.name}).first()
        return found is not None

    @property
    def kind(self) -> str:
        return "pgvector-hnsw" if self._has_hnsw() else "pgvector-exact"

    def __len__(self) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(self.table)).scalar_one())

    def ids(self) -> np.ndarray:
        with self.engine.connect() as connection:
            return np.fromiter(connection.execute(select(self.table.c.id)).scalars(), dtype=np.int64)

    def add(self, ids: np.ndarray, vectors: np.ndarray, labels: Sequence[VectorLabel]) -> None:
        rows = [
            {"id": int(i), "product_id": label.product_id, "search": label.search, "embedding": vector}
            for i, vector, label in zip(ids.tolist(), np.asarray(vectors, np.float32), labels, strict=True)
        ]
        statement = insert(self.table)
        statement = statement.on_conflict_do_update(
            index_elements=[self.table.c.id],
            set_={column: statement.excluded[column] for column in ("product_id", "search", "embedding")},
        )
        with self.engine.begin() as connection:
            for batch in chunks(rows, _WRITE_BATCH):
                connection.execute(statement, batch)

    def relabel(self, ids: Sequence[int], labels: Sequence[VectorLabel]) -> None:
        rows = [{"vid": int(i), "s": label.search} for i, label in zip(ids, labels, strict=True)]
        if not rows:
            return
        statement = (
            update(self.table).where(self.table.c.id == bindparam("vid")).values(search=bindparam("s", type_=JSONB))
        )
        with self.engine.begin() as connection:
            for batch in chunks(rows, _WRITE_BATCH):
                connection.execute(statement, batch)

    def remove(self, ids: Sequence[int]) -> None:
        with self.engine.begin() as connection:
            for batch in chunks([int(i) for i in ids], _WRITE_BATCH):
                connection.execute(delete(self.table).where(self.table.c.id.in_(batch)))

    def search(self, queries: np.ndarray, k: int, scope: SearchScope | None = None) -> tuple[np.ndarray, np.ndarray]:
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        scores = np.full((len(queries), k), -np.inf, np.float32)
        found = np.full((len(queries), k), -1, np.int64)
        conditions = sql_conditions(self.table.c.search, scope.filters, "postgresql") if scope else []
        ef_search = min(max(self.settings.hnsw_ef_search, k), _MAX_EF_SEARCH)
        with self.engine.begin() as connection:
            connection.execute(text(f"SET LOCAL hnsw.ef_search = {ef_search}"))
            # a filter the GIN index narrows to few rows is scanned exactly: cheap, and an HNSW walk would see only
            # the few of them among its ef_search nearest (recall@10 0.66 measured for a 5% filter on 100k)
            exact = bool(conditions) and self._narrow(connection, conditions)
            self._use_hnsw(connection, not exact)
            for row, query in enumerate(queries):
                hits = self._nearest(connection, query, k, conditions)
                if len(hits) < k and not exact:  # the HNSW scan ran out of candidates: scan exactly
                    self._use_hnsw(connection, False)
                    hits = self._nearest(connection, query, k, conditions)
                    self._use_hnsw(connection, True)
                for column, (vector_id, score) in enumerate(hits):
                    found[row, column], scores[row, column] = vector_id, score
        return scores, found

    @staticmethod
    def _use_hnsw(connection: Connection, use: bool) -> None:
        connection.execute(text(f"SET LOCAL enable_indexscan = {'on' if use else 'off'}"))

    def _narrow(self, connection: Connection, conditions: list[Any]) -> bool:
        limit = self.settings.exact_threshold
        query = select(func.count()).select_from(select(self.table.c.id).where(*conditions).limit(limit + 1).subquery())
        return int(connection.execute(query).scalar_one()) <= limit

    def _nearest(
        self, connection: Connection, query: np.ndarray, k: int, conditions: list[Any]
    ) -> list[tuple[int, float]]:
        distance = self.table.c.embedding.max_inner_product(query)  # <#>: the negated inner product
        statement = select(self.table.c.id, distance).where(*conditions).order_by(distance).limit(k)
        return [(int(vector_id), -float(negated)) for vector_id, negated in connection.execute(statement)]

    def save(self) -> None:
        """Every change is committed when made; this builds the HNSW index once the table has grown enough."""
        wanted = self.settings.kind == "hnsw" or (
            self.settings.kind == "auto" and len(self) >= self.settings.exact_threshold
        )
        if wanted and not self._has_hnsw():
            with self.engine.begin() as connection:
                connection.execute(text(f"SET LOCAL maintenance_work_mem = '{_BUILD_MEMORY}'"))
                self._hnsw.create(connection)

    def close(self) -> None:
        self.engine.dispose()

"""The two store seams.

MetadataStore: sql.SqlMetadataStore (SQLite, PostgreSQL), mongo.MongoMetadataStore.
VectorIndex: faiss_index.FaissIndex, pgvector_index.PgVectorIndex, qdrant_index.QdrantIndex.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import numpy as np

from prodmatch.stores.filters import Filter
from prodmatch.stores.records import (
    ApiKey,
    Feedback,
    Product,
    ProductUpsert,
    QueryLogEntry,
    VectorChanges,
    VectorLabel,
)


@dataclass(frozen=True)
class SearchScope:
    """The vectors a filtered search may return.

    Indexes that keep labels evaluate FILTERS inside their own search; the others ask ALLOWED_IDS, the
    metadata store's answer for the same filters, only when they need it."""

    filters: Sequence[Filter]
    allowed_ids: Callable[[], np.ndarray]

    @classmethod
    def of_ids(cls, ids: np.ndarray) -> SearchScope:
        return cls((), lambda: ids)


class MetadataStore(Protocol):
    """Products, their images and vectors (the source of truth the vector index is rebuilt from), settings."""

    def get_meta(self, key: str) -> Any: ...

    def set_meta(self, key: str, value: Any) -> None: ...

    def hashes(self, ids: Sequence[str]) -> dict[str, tuple[str, str]]: ...

    def upsert(self, items: Sequence[ProductUpsert]) -> VectorChanges: ...

    def delete(self, product_id: str) -> VectorChanges: ...

    def get(self, ids: Sequence[str]) -> dict[str, Product]: ...

    def page(self, offset: int, limit: int, filters: Sequence[Filter] = ()) -> list[Product]: ...

    def count(self, filters: Sequence[Filter] = ()) -> int: ...

    def catalog_stamp(self) -> str:
        """Changes whenever a product is written or deleted (product count and latest write): what a cache built
        from every product (the lexical index) is checked against."""
        ...

    def attribute_keys(self) -> set[str]: ...

    def vector_ids(self, space: str, filters: Sequence[Filter] = ()) -> np.ndarray: ...

    def vector_owners(self, vector_ids: Sequence[int]) -> dict[int, str]: ...

    def product_vectors(self, product_ids: Sequence[str], space: str) -> tuple[list[str], np.ndarray]: ...

    def iter_vectors(
        self, space: str, ids: np.ndarray, batch: int = 4096
    ) -> Iterator[tuple[np.ndarray, np.ndarray, list[VectorLabel]]]: ...

    def link_near_duplicates(self, pairs: Sequence[tuple[int, int]], max_difference: float) -> int: ...

    def duplicate_groups(self, include_near: bool = True) -> list[list[str]]: ...

    def products_with_image(self, sha256: str) -> list[str]: ...

    def append_queries(self, entries: Sequence[QueryLogEntry]) -> None: ...

    def recent_queries(self, limit: int) -> list[QueryLogEntry]: ...

    def find_query(self, query_id: str) -> QueryLogEntry | None: ...

    def add_feedback(self, feedback: Feedback) -> None: ...

    def feedback(self) -> list[Feedback]: ...

    def add_api_key(self, key: ApiKey) -> None: ...

    def api_keys(self) -> list[ApiKey]: ...

    def find_api_key(self, key_id: str) -> ApiKey | None: ...

    def revoke_api_key(self, key_id: str, at: datetime) -> bool: ...

    def close(self) -> None: ...


class VectorIndex(Protocol):
    """Nearest-neighbour search by inner product over unit vectors, keyed by int64 vector ids."""

    @property
    def kind(self) -> str: ...

    def __len__(self) -> int: ...

    def ids(self) -> np.ndarray: ...

    def add(self, ids: np.ndarray, vectors: np.ndarray, labels: Sequence[VectorLabel]) -> None: ...

    def relabel(self, ids: Sequence[int], labels: Sequence[VectorLabel]) -> None: ...

    def remove(self, ids: Sequence[int]) -> None: ...

    def search(
        self, queries: np.ndarray, k: int, scope: SearchScope | None = None
    ) -> tuple[np.ndarray, np.ndarray]: ...

    def save(self) -> None: ...

    def close(self) -> None: ...

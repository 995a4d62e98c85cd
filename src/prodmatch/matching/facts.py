"""Facts about the catalog that every query needs and that change only when the catalog does: filterable
attribute keys, duplicate-listing groups, the decision's calibration, attribute value counts (keywords, facets),
the lexical index of text queries, and the products and vector owners that answers are made of.

Read from the metadata store and kept until refresh(): a query must not pay for store round trips that return
the same answer every time. Every write to the catalog calls refresh() (application layer).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from cachetools import LRUCache

from prodmatch.matching.decision import DECISION_KEY, Calibration, from_meta
from prodmatch.matching.lexical import LexicalIndex, load_saved, save_index
from prodmatch.stores.protocols import MetadataStore
from prodmatch.stores.records import Product

T = TypeVar("T")
_PAGE = 1000
_MAX_VALUE_CHARS = 40  # longer text values are names or descriptions, not facets
PRODUCTS_KEPT = 20_000
OWNERS_KEPT = 500_000  # ~50 MB at most: a vector id and its product id per entry
VECTORS_KEPT = 40_000  # products' vectors per space: ~80 MB at most for 512-d float32, one vector each


class CatalogFacts:
    """Cached catalog-wide facts for one metadata store; thread-safe."""

    def __init__(self, store: MetadataStore, lexical_file: Path | None = None) -> None:
        self._store = store
        # Where the built lexical index is kept between starts: rebuilding it reads every product (12.7 s at 100k).
        self._lexical_file = lexical_file
        self._lock = threading.RLock()  # re-entrant: one fact may be computed from another (shares from counts)
        self._cached: dict[str, Any] = {}
        self._products: LRUCache[str, Product] = LRUCache(PRODUCTS_KEPT)
        # Which product a vector id belongs to. Forgotten on refresh like the rest: SQLite hands the highest id
        # out again once its row is deleted, so after "delete X, add Y" X's last vector id may be Y's (a stale
        # owner would hide Y from every answer).
        self._owners: LRUCache[int, str] = LRUCache(OWNERS_KEPT)
        # The exact scores of a query's candidates need their stored vectors (several per product with several
        # photos); popular products come back query after query.
        self._vectors: LRUCache[tuple[str, str], np.ndarray] = LRUCache(VECTORS_KEPT)
        # The lexical index takes seconds to build for a large catalog: it is built outside _lock (other facts stay
        # readable meanwhile), one build at a time, and kept only if no refresh came while it was built.
        self._lexical_lock = threading.Lock()
        self._generation = 0

    def refresh(self) -> None:
        """Forget everything: the catalog changed (products written or deleted, recalibrated)."""
        with self._lock:
            self._cached.clear()
            self._products.clear()
            self._owners.clear()
            self._vectors.clear()
            self._generation += 1

    def products(self, ids: list[str]) -> dict[str, Product]:
        """The stored products among IDS (kept in an LRU until the catalog changes)."""
        with self._lock:
            found = {pid: product for pid in ids if (product := self._products.get(pid)) is not None}
        missing = [pid for pid in ids if pid not in found]
        if missing:
            fetched = self._store.get(missing)
            with self._lock:
                self._products.update(fetched)
            found.update(fetched)
        return found

    def owners(self, vector_ids: list[int]) -> dict[int, str]:
        """The product each vector id belongs to."""
        with self._lock:
            found = {vid: owner for vid in vector_ids if (owner := self._owners.get(vid)) is not None}
        missing = [vid for vid in vector_ids if vid not in found]
        if missing:
            fetched = self._store.vector_owners(missing)
            with self._lock:
                self._owners.update(fetched)
            found.update(fetched)
        return found

    def product_vectors(self, product_ids: list[str], space: str) -> dict[str, np.ndarray]:
        """The stored vectors of each product among PRODUCT_IDS in SPACE, one row per vector (products without
        vectors in SPACE are left out)."""
        with self._lock:
            cached = {pid: v for pid in product_ids if (v := self._vectors.get((space, pid))) is not None}
        missing = [pid for pid in product_ids if pid not in cached]
        if missing:
            owners, vectors = self._store.product_vectors(missing, space)
            fetched: dict[str, list[np.ndarray]] = {}
            for owner, vector in zip(owners, vectors, strict=True):
                fetched.setdefault(owner, []).append(vector)
            stacked = {pid: np.stack(rows) for pid, rows in fetched.items()}
            with self._lock:
                self._vectors.update({(space, pid): rows for pid, rows in stacked.items()})
            cached.update(stacked)
        return cached

    def _get(self, name: str, compute: Callable[[], T]) -> T:
        with self._lock:
            if name not in self._cached:
                self._cached[name] = compute()
            value: T = self._cached[name]
            return value

    def attribute_keys(self) -> set[str]:
        return self._get("keys", self._store.attribute_keys)

    def duplicate_groups(self) -> dict[str, set[str]]:
        """Product id -> its duplicate-listing group (byte-identical and re-encoded copies of one photo)."""
        return self._get("groups", lambda: group_map(self._store.duplicate_groups()))

    def calibrations(self) -> dict[str, Calibration]:
        """The decision's calibration per query space ("image", "text"); empty before the first calibration."""
        return self._get("calibrations", lambda: from_meta(self._store.get_meta(DECISION_KEY)))

    def lexical(self) -> LexicalIndex:
        """The lexical (BM25) index of the catalog's products. Built on first use after a change, so a burst of
        writes costs one rebuild, paid by the next text query (or by warming): ~0.06 ms of CPU per product."""
        with self._lexical_lock:
            with self._lock:
                built: LexicalIndex | None = self._cached.get("lexical")
                generation = self._generation
            if built is None:
                built = self._saved_or_built_lexical()
                with self._lock:
                    if generation == self._generation:
                        self._cached["lexical"] = built
            return built

    def _saved_or_built_lexical(self) -> LexicalIndex:
        if self._lexical_file is None:
            return LexicalIndex.build(self._store)
        stamp = self._store.catalog_stamp()  # taken first: a write during the build makes the saved file stale
        saved = load_saved(self._lexical_file, stamp)
        if saved is not None:
            return saved
        built = LexicalIndex.build(self._store)
        save_index(built, self._lexical_file, stamp)
        return built

    def product_count(self) -> int:
        return self._get("count", self._store.count)

    def value_counts(self) -> dict[str, Counter[str]]:
        """Attribute key -> how many products hold each short text value."""
        return self._get("values", self._count_values)

    def value_shares(self) -> dict[tuple[str, str], float]:
        """Share of the catalog holding each (attribute, text value): the baseline for result keywords."""

        def shares() -> dict[tuple[str, str], float]:
            total = max(1, self.product_count())
            counts = self.value_counts()
            return {(key, value): n / total for key, values in counts.items() for value, n in values.items()}

        return self._get("shares", shares)

    def facets(self, max_values: int = 40) -> list[dict[str, Any]]:
        """Filterable attribute columns with their values and counts (columns with a few distinct text values)."""
        return [
            {"key": key, "values": [{"value": v, "count": n} for v, n in sorted(values.items())]}
            for key, values in sorted(self.value_counts().items())
            if 1 < len(values) <= max_values
        ]

    def _count_values(self) -> dict[str, Counter[str]]:
        counts: dict[str, Counter[str]] = {}
        for attributes in self._every_products_attributes():
            for key, value in attributes.items():
                if isinstance(value, str) and len(value) <= _MAX_VALUE_CHARS:
                    counts.setdefault(key, Counter())[value] += 1
        return counts

    def _every_products_attributes(self) -> Iterator[dict[str, Any]]:
        """From the lexical index when it is built (it holds them all: reading 100k products back from the store
        cost 2.6 s of a server's first query), else page by page from the store."""
        with self._lock:
            lexical: LexicalIndex | None = self._cached.get("lexical")
        if lexical is not None:
            yield from lexical.attributes
            return
        for offset in range(0, self._store.count(), _PAGE):
            yield from (product.attributes for product in self._store.page(offset, _PAGE))


def group_map(duplicate_groups: list[list[str]]) -> dict[str, set[str]]:
    """Each product in a duplicate group mapped to its whole group."""
    return {member: set(group) for group in duplicate_groups for member in group}

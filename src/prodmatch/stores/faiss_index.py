"""VectorIndex on FAISS: exact (flat) for small catalogs, HNSW above a threshold; saved atomically.

HNSW cannot delete in place, so deletions become tombstones excluded from every search and are compacted
away (the graph rebuilt from its own vectors) when they pass a fifth of the index.

Filtered search: a filter that leaves at most `exact_threshold` vectors is answered exactly over just those
vectors (cheaper than a graph walk and never misses); a wider filter walks the HNSW graph with an ID
selector, falling back to exact search if the walk comes back short.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from prodmatch.config import IndexSettings
from prodmatch.stores.protocols import SearchScope
from prodmatch.stores.records import VectorLabel

_COMPACT_RATIO = 0.2
# Below this many vectors per add, starting OpenMP threads costs more than it saves (online upserts).
_PARALLEL_BUILD_MIN = 256


class FaissIndex:
    """One vector space's index, persisted as a single file written then renamed."""

    def __init__(self, path: Path, dims: int, settings: IndexSettings) -> None:
        self.path = Path(path)
        self.dims = dims
        self.settings = settings
        faiss.omp_set_num_threads(settings.search_threads)  # process-wide in FAISS; see IndexSettings
        self._tombstones: set[int] = set()
        self._id_lookup: tuple[np.ndarray, np.ndarray] | None = None  # (sorted ids, their storage positions)
        # SWIG objects: their bundled type hints are incomplete (arrays are accepted where hints say objects).
        self._index: Any = self._load() if self.path.exists() else self._empty(self._wanted_kind(0))

    @property
    def kind(self) -> str:
        return "hnsw" if isinstance(faiss.downcast_index(self._index.index), faiss.IndexHNSW) else "flat"

    def __len__(self) -> int:
        return int(self._index.ntotal) - len(self._tombstones)

    def ids(self) -> np.ndarray:
        """The live vector ids."""
        stored = faiss.vector_to_array(self._index.id_map).astype(np.int64)
        if not self._tombstones:
            return stored
        return stored[~np.isin(stored, np.fromiter(self._tombstones, dtype=np.int64))]

    def add(self, ids: np.ndarray, vectors: np.ndarray, labels: Sequence[VectorLabel] = ()) -> None:
        """Add vectors; FAISS keeps no labels (filters reach it as allowed ids)."""
        if len(ids) == 0:
            return
        self._tombstones.difference_update(int(i) for i in ids)
        self._id_lookup = None
        with self._build_threads(len(ids)):
            self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))
            if self.kind != self._wanted_kind(len(self)):
                self._rebuild(self._wanted_kind(len(self)))

    @contextmanager
    def _build_threads(self, batch: int) -> Iterator[None]:
        """All build threads while a large batch goes into the graph, then back to the search setting."""
        if batch < _PARALLEL_BUILD_MIN:
            yield
            return
        faiss.omp_set_num_threads(self.settings.build_threads or os.cpu_count() or 1)
        try:
            yield
        finally:
            faiss.omp_set_num_threads(self.settings.search_threads)

    def relabel(self, ids: Sequence[int], labels: Sequence[VectorLabel]) -> None:
        """Nothing to do: FAISS keeps no labels."""

    def close(self) -> None:
        """Nothing to release: the index lives in memory and is written by save()."""

    def remove(self, ids: Sequence[int]) -> None:
        if not len(ids):
            return
        self._id_lookup = None
        if self.kind == "flat":
            self._index.remove_ids(np.asarray(ids, dtype=np.int64))
            return
        self._tombstones.update(int(i) for i in ids)
        if len(self._tombstones) > _COMPACT_RATIO * max(self._index.ntotal, 1):
            with self._build_threads(len(self)):
                self._rebuild(self._wanted_kind(len(self)))

    def search(self, queries: np.ndarray, k: int, scope: SearchScope | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each (n_queries, k); missing slots have id -1. SCOPE restricts the candidates."""
        allowed = None if scope is None else scope.allowed_ids()
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        k = max(1, min(k, len(self) if allowed is None else len(allowed)))
        if len(self) == 0 or (allowed is not None and len(allowed) == 0):
            return np.full((len(queries), k), -np.inf, "f4"), np.full((len(queries), k), -1, np.int64)
        if allowed is not None and self.kind == "hnsw" and len(allowed) <= self.settings.exact_threshold:
            return self._exact_subset(queries, k, allowed)
        selector, keep_alive = self._selector(allowed)
        params = self._params(selector, k)
        scores, ids = self._index.search(queries, k, params=params)
        del keep_alive
        if allowed is not None and self.kind == "hnsw" and bool((ids < 0).any()):
            # A narrow filter can cut the HNSW graph into pieces the walk never reaches; fall back to exact.
            return self._exact_subset(queries, k, allowed)
        return scores, ids

    def _selector(self, allowed: np.ndarray | None) -> tuple[Any, list[object]]:
        keep: list[object] = []
        selector: Any = None
        if allowed is not None:
            allowed = np.ascontiguousarray(allowed, dtype=np.int64)
            selector = faiss.IDSelectorBatch(allowed)
            keep += [allowed, selector]
        if self._tombstones:
            dead = np.fromiter(self._tombstones, dtype=np.int64)
            not_dead = faiss.IDSelectorNot(faiss.IDSelectorBatch(dead))
            keep += [dead, not_dead]
            selector = not_dead if selector is None else faiss.IDSelectorAnd(selector, not_dead)
            keep.append(selector)
        return selector, keep

    def _params(self, selector: Any, k: int) -> Any:
        if self.kind == "hnsw":
            params: Any = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]  # missing from faiss's hints
            params.efSearch = max(self.settings.hnsw_ef_search, k)
        elif selector is not None:
            params = faiss.SearchParameters()
        else:
            return None
        if selector is not None:
            params.sel = selector
        return params

    def _exact_subset(self, queries: np.ndarray, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        live = np.setdiff1d(allowed, np.fromiter(self._tombstones, dtype=np.int64))
        ids, positions = self._positions(live)
        scores = queries @ self._stored_vectors()[positions].T
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        found_scores = np.take_along_axis(scores, order, axis=1)
        found_ids = ids[order]
        if found_ids.shape[1] < k:  # fewer live vectors than asked for: pad like FAISS does
            pad = k - found_ids.shape[1]
            found_scores = np.pad(found_scores, ((0, 0), (0, pad)), constant_values=-np.inf)
            found_ids = np.pad(found_ids, ((0, 0), (0, pad)), constant_values=-1)
        return found_scores.astype(np.float32), found_ids

    def _positions(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(the ids that are stored, their row positions in the index storage)."""
        if self._id_lookup is None:
            stored = faiss.vector_to_array(self._index.id_map).astype(np.int64)
            order = np.argsort(stored, kind="stable")
            self._id_lookup = (stored[order], order)
        keys, rows = self._id_lookup
        at = np.clip(np.searchsorted(keys, ids), 0, max(len(keys) - 1, 0))
        present = keys[at] == ids if len(keys) else np.zeros(len(ids), bool)
        return ids[present], rows[at[present]]

    def _stored_vectors(self) -> np.ndarray:
        """A zero-copy view of every stored vector, in storage order."""
        inner = faiss.downcast_index(self._index.index)
        flat: Any = faiss.downcast_index(inner.storage) if isinstance(inner, faiss.IndexHNSW) else inner
        return faiss.rev_swig_ptr(flat.get_xb(), flat.ntotal * self.dims).reshape(flat.ntotal, self.dims)

    def save(self) -> None:
        """Write to a temporary file, fsync, then rename over the old one: a crash never leaves half an index."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.savez(
            buffer, index=faiss.serialize_index(self._index), tombstones=np.fromiter(self._tombstones, dtype=np.int64)
        )
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "wb") as handle:
            handle.write(buffer.getvalue())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)

    def _load(self) -> Any:
        with np.load(self.path) as saved:
            self._tombstones = {int(i) for i in saved["tombstones"]}
            return faiss.deserialize_index(saved["index"])

    def _wanted_kind(self, size: int) -> str:
        if self.settings.kind != "auto":
            return self.settings.kind
        return "hnsw" if size >= self.settings.exact_threshold else "flat"

    def _empty(self, kind: str) -> Any:
        inner: Any
        if kind == "hnsw":
            inner = faiss.IndexHNSWFlat(self.dims, self.settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = self.settings.hnsw_ef_construction
        else:
            inner = faiss.IndexFlatIP(self.dims)
        return faiss.IndexIDMap2(inner)

    def _rebuild(self, kind: str) -> None:
        """A fresh index of KIND holding the live vectors (read back in storage order, tombstones dropped)."""
        stored_ids = faiss.vector_to_array(self._index.id_map).astype(np.int64)
        vectors = self._index.index.reconstruct_n(0, self._index.ntotal)
        live = ~np.isin(stored_ids, np.fromiter(self._tombstones, dtype=np.int64))
        self._index = self._empty(kind)
        self._tombstones = set()
        self._id_lookup = None
        if live.any():
            self._index.add_with_ids(np.ascontiguousarray(vectors[live]), stored_ids[live])

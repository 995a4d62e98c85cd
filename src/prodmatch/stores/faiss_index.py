"""VectorIndex on FAISS: exact (flat) for small catalogs, HNSW in the middle, IVF-SQ8 with exact re-ranking for
large ones (stores/faiss_ivf.py); saved atomically with faiss.write_index and opened memory-mapped.

HNSW cannot delete in place, so deletions become tombstones excluded from every search and are compacted
away (the graph rebuilt from its own vectors) when they pass a fifth of the index. Flat and IVF delete in place.

Filtered search keeps the filter inside the search (an IDSelectorBitmap of the allowed ids): a filter that leaves
at most `exact_threshold` vectors of an HNSW index (`ivf_exact_filter_max` of an IVF one) is answered exactly over
just those vectors (cheaper than the walk and never misses); a wider one searches with the selector, falling back
to exact search if the search comes back short.

File format: the FAISS index as write_index writes it, then a trailer (the tombstone ids, their count, a magic), so
index and tombstones change in one rename; IVF's float32 vectors sit beside it in NAME.f32. Opening maps the file
(IO_FLAG_MMAP_IFC: a 1M index is ready in well under a second); the first write reads it into memory, because
FAISS cannot grow a mapped index. Files in the former np.savez format are still read.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from prodmatch.config import IndexKind, IndexSettings
from prodmatch.stores.faiss_ivf import VectorFile, bitmap_selector, build_ivf, id_mask, ivf_ids, nlist_for, search_ivf
from prodmatch.stores.protocols import SearchScope
from prodmatch.stores.records import VectorLabel

_COMPACT_RATIO = 0.2
# Below this many vectors per add, starting OpenMP threads costs more than it saves (online upserts).
_PARALLEL_BUILD_MIN = 256
_TRAILER_MAGIC = b"PMTOMB01"
_TRAILER = struct.Struct("<q8s")  # tombstone count, magic; preceded by the tombstones as int64


class FaissIndex:
    """One vector space's index, persisted as a single file written then renamed (plus NAME.f32 for IVF)."""

    def __init__(self, path: Path, dims: int, settings: IndexSettings) -> None:
        self.path = Path(path)
        self.dims = dims
        self.settings = settings
        faiss.omp_set_num_threads(settings.search_threads)  # process-wide in FAISS; see IndexSettings
        self._tombstones: set[int] = set()
        self._id_lookup: tuple[np.ndarray, np.ndarray] | None = None  # (sorted ids, their storage positions)
        self._vectors = VectorFile(self.path.with_name(self.path.name + ".f32"), dims)
        self._mapped = False  # True while the index is the read-only map of the saved file
        # SWIG objects: their bundled type hints are incomplete (arrays are accepted where hints say objects).
        self._index: Any = self._load() if self.path.exists() else self._empty(self._wanted_kind(0))

    @property
    def kind(self) -> str:
        if isinstance(self._index, faiss.IndexIVF):
            return IndexKind.IVF_SQ8.value
        inner = faiss.downcast_index(self._index.index)
        return IndexKind.HNSW.value if isinstance(inner, faiss.IndexHNSW) else IndexKind.FLAT.value

    def __len__(self) -> int:
        return int(self._index.ntotal) - len(self._tombstones)

    def ids(self) -> np.ndarray:
        """The live vector ids."""
        if self.kind == IndexKind.IVF_SQ8:
            return ivf_ids(self._index)
        stored = faiss.vector_to_array(self._index.id_map).astype(np.int64)
        if not self._tombstones:
            return stored
        return stored[~np.isin(stored, self._dead())]

    def add(self, ids: np.ndarray, vectors: np.ndarray, labels: Sequence[VectorLabel] = ()) -> None:
        """Add vectors; FAISS keeps no labels (filters reach it as allowed ids). Changes kind when the size says so,
        building the new kind from the old vectors and these at once (a 1M bulk load never goes through HNSW)."""
        if len(ids) == 0:
            return
        ids = np.asarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self._writable()
        self._tombstones.difference_update(ids.tolist())
        self._id_lookup = None
        wanted = self._wanted_kind(len(self) + len(ids))
        with self._build_threads(len(ids) if wanted == self.kind else len(self) + len(ids)):
            if wanted != self.kind or self._outgrown(len(self) + len(ids)):
                self._rebuild(wanted, ids, vectors)
            else:
                if self.kind == IndexKind.IVF_SQ8:
                    self._vectors.write(ids, vectors)
                self._index.add_with_ids(vectors, ids)

    @contextmanager
    def _build_threads(self, batch: int) -> Iterator[None]:
        """All build threads while a large batch goes into the index, then back to the search setting."""
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
        """Nothing to release: the index lives in memory (or in a map) and is written by save()."""

    def remove(self, ids: Sequence[int]) -> None:
        if not len(ids):
            return
        self._writable()
        self._id_lookup = None
        if self.kind != IndexKind.HNSW:  # flat and IVF lists delete in place
            self._index.remove_ids(np.asarray(ids, dtype=np.int64))
            return
        self._tombstones.update(int(i) for i in ids)
        if len(self._tombstones) > _COMPACT_RATIO * max(self._index.ntotal, 1):
            with self._build_threads(len(self)):
                self._rebuild(self._wanted_kind(len(self)))

    def search(self, queries: np.ndarray, k: int, scope: SearchScope | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each (n_queries, k); missing slots have id -1. SCOPE restricts the candidates."""
        allowed = None if scope is None else np.asarray(scope.allowed_ids(), dtype=np.int64)
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        k = max(1, min(k, len(self) if allowed is None else len(allowed)))
        if len(self) == 0 or (allowed is not None and len(allowed) == 0):
            return np.full((len(queries), k), -np.inf, "f4"), np.full((len(queries), k), -1, np.int64)
        if self.kind == IndexKind.IVF_SQ8:
            return search_ivf(self._index, self._vectors, queries, k, allowed, self.settings)
        if allowed is not None and self.kind == IndexKind.HNSW and len(allowed) <= self.settings.exact_threshold:
            return self._exact_subset(queries, k, allowed)
        selector, bits = self._selector(allowed)
        scores, ids = self._index.search(queries, k, params=self._params(selector, k))
        del bits
        if allowed is not None and self.kind == IndexKind.HNSW and bool((ids < 0).any()):
            # A narrow filter can cut the HNSW graph into pieces the walk never reaches; fall back to exact.
            return self._exact_subset(queries, k, allowed)
        return scores, ids

    def _dead(self) -> np.ndarray:
        return np.fromiter(self._tombstones, dtype=np.int64, count=len(self._tombstones))

    def _selector(self, allowed: np.ndarray | None) -> tuple[Any, np.ndarray | None]:
        """A bitmap of the ids a search may return (allowed and not dead), or None when all may be."""
        if allowed is None and not self._tombstones:
            return None, None
        if allowed is not None:
            keep = id_mask(allowed, int(allowed.max()) + 1)
        else:
            keep = np.ones(int(faiss.vector_to_array(self._index.id_map).max()) + 1, dtype=bool)
        dead = self._dead()
        keep[dead[dead < len(keep)]] = False
        return bitmap_selector(keep)

    def _params(self, selector: Any, k: int) -> Any:
        if self.kind == IndexKind.HNSW:
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
        live = np.setdiff1d(allowed, self._dead())
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
        tmp = self.path.with_name(self.path.name + ".tmp")
        if self._mapped:  # nothing changed since the file was opened; only a crash's leftover to clear
            tmp.unlink(missing_ok=True)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._vectors.sync()  # IVF re-ranks from it: on disk before the index that refers to it
        faiss.write_index(self._index, str(tmp))
        dead = self._dead()
        with open(tmp, "ab") as handle:
            handle.write(dead.astype("<i8").tobytes() + _TRAILER.pack(len(dead), _TRAILER_MAGIC))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)

    def _load(self) -> Any:
        with open(self.path, "rb") as handle:
            if handle.read(2) == b"PK":  # the former np.savez format
                return self._load_npz()
            handle.seek(-_TRAILER.size, os.SEEK_END)
            count, magic = _TRAILER.unpack(handle.read(_TRAILER.size))
            if magic == _TRAILER_MAGIC and count:
                handle.seek(-_TRAILER.size - 8 * count, os.SEEK_END)
                self._tombstones = set(np.frombuffer(handle.read(8 * count), dtype="<i8").tolist())
        self._mapped = True
        return faiss.read_index(str(self.path), faiss.IO_FLAG_MMAP_IFC)

    def _load_npz(self) -> Any:
        with np.load(self.path) as saved:
            self._tombstones = {int(i) for i in saved["tombstones"]}
            return faiss.deserialize_index(saved["index"])

    def _writable(self) -> None:
        """FAISS cannot grow or shrink a mapped index (it aborts the process): read it into memory first."""
        if self._mapped:
            self._index = faiss.read_index(str(self.path))
            self._mapped = False

    def _wanted_kind(self, size: int) -> IndexKind:
        if self.settings.kind != IndexKind.AUTO:
            return self.settings.kind
        if size < self.settings.exact_threshold:
            return IndexKind.FLAT
        return IndexKind.HNSW if size < self.settings.ivf_threshold else IndexKind.IVF_SQ8

    def _outgrown(self, size: int) -> bool:
        """An IVF trained for far fewer vectors (its lists 4x too long): retrain once nlist_for(size) doubles."""
        if self.kind != IndexKind.IVF_SQ8 or self.settings.ivf_nlist:
            return False
        return nlist_for(size) >= 2 * faiss.extract_index_ivf(self._index).nlist

    def _empty(self, kind: IndexKind) -> Any:
        """An empty index of KIND; IVF needs vectors to train on, so an empty one starts flat."""
        inner: Any
        if kind == IndexKind.HNSW:
            inner = faiss.IndexHNSWFlat(self.dims, self.settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = self.settings.hnsw_ef_construction
        else:
            inner = faiss.IndexFlatIP(self.dims)
        return faiss.IndexIDMap2(inner)

    def _live(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of every live vector."""
        if self.kind == IndexKind.IVF_SQ8:
            ids = ivf_ids(self._index)
            return ids, np.asarray(self._vectors.view()[ids])
        stored = faiss.vector_to_array(self._index.id_map).astype(np.int64)
        vectors = self._index.index.reconstruct_n(0, self._index.ntotal)
        live = ~np.isin(stored, self._dead())
        return stored[live], vectors[live]

    def _rebuild(self, kind: IndexKind, ids: np.ndarray | None = None, vectors: np.ndarray | None = None) -> None:
        """A fresh index of KIND holding the live vectors (tombstones dropped) and IDS/VECTORS if given."""
        live_ids, live_vectors = self._live()
        if ids is not None and vectors is not None:
            live_ids = np.concatenate([live_ids, ids]) if len(live_ids) else ids
            live_vectors = np.concatenate([live_vectors, vectors]) if len(live_ids) > len(ids) else vectors
        self._tombstones = set()
        self._id_lookup = None
        if kind == IndexKind.IVF_SQ8 and len(live_ids):
            self._vectors.write(live_ids, live_vectors)
            self._index = build_ivf(self.dims, live_ids, live_vectors, self.settings)
            return
        self._index = self._empty(kind)
        if len(live_ids):
            self._index.add_with_ids(np.ascontiguousarray(live_vectors), live_ids)

"""pgvector: exact scans below the threshold, an HNSW index built by save() above it, and filtered searches
that stay exact when the HNSW scan runs short."""

from __future__ import annotations

import numpy as np

from prodmatch.config import IndexSettings
from prodmatch.stores.filters import parse_filters, searchable
from prodmatch.stores.pgvector_index import PgVectorIndex
from prodmatch.stores.protocols import SearchScope
from prodmatch.stores.records import VectorLabel
from tests.conftest import StoreUrl

DIMS = 16


def test_hnsw_is_built_past_the_threshold_and_narrow_filters_stay_exact(store_url: StoreUrl) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((300, DIMS)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    labels = [VectorLabel(f"p{i}", searchable({"shelf": "rare" if i % 50 == 0 else "common"})) for i in range(300)]
    index = PgVectorIndex(store_url("pgvector"), "image", DIMS, IndexSettings(exact_threshold=200, hnsw_ef_search=10))
    try:
        index.add(np.arange(300), vectors, labels)
        assert index.kind == "pgvector-exact"
        index.save()
        assert index.kind == "pgvector-hnsw" and len(index) == 300
        rare = np.arange(0, 300, 50)
        _scores, found = index.search(vectors[7], 10, SearchScope(parse_filters(["shelf=rare"]), lambda: rare))
        expected = rare[np.argsort(-(vectors[rare] @ vectors[7]))]
        assert found[0][: len(rare)].tolist() == expected.tolist() and (found[0][len(rare) :] == -1).all()
        index.relabel([7], [VectorLabel("p7", searchable({"shelf": "rare"}))])
        _scores, found = index.search(vectors[7], 1, SearchScope(parse_filters(["shelf=rare"]), lambda: rare))
        assert found[0][0] == 7
    finally:
        index.close()

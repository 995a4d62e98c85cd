"""FAISS index: exact vs HNSW choice, filtered search, deletions, atomic saves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from prodmatch.config import IndexSettings
from prodmatch.stores.faiss_index import FaissIndex
from prodmatch.stores.protocols import SearchScope

DIMS = 16


def unit_vectors(n: int, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((n, DIMS)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def filled(path: Path, n: int, **settings: object) -> tuple[FaissIndex, np.ndarray]:
    index = FaissIndex(path, DIMS, IndexSettings(**settings))  # type: ignore[arg-type]
    vectors = unit_vectors(n)
    index.add(np.arange(100, 100 + n), vectors)
    return index, vectors


def test_small_index_is_exact_and_switches_to_hnsw_past_the_threshold(tmp_path: Path) -> None:
    index, _ = filled(tmp_path / "i.faiss", 50, exact_threshold=80)
    assert index.kind == "flat"
    index.add(np.arange(1000, 1040), unit_vectors(40, seed=1))
    assert index.kind == "hnsw" and len(index) == 90
    assert sorted(index.ids().tolist()) == sorted([*range(100, 150), *range(1000, 1040)])


def test_kind_can_be_forced(tmp_path: Path) -> None:
    index, _ = filled(tmp_path / "i.faiss", 10, kind="hnsw")
    assert index.kind == "hnsw"
    with pytest.raises(ValidationError, match="'auto', 'flat' or 'hnsw'"):  # the settings name the valid kinds
        IndexSettings(kind="ivf")  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_search_finds_the_exact_neighbours(tmp_path: Path, kind: str) -> None:
    index, vectors = filled(tmp_path / "i.faiss", 300, kind=kind)
    scores, ids = index.search(vectors[:5], 3)
    expected = np.argsort(-(vectors[:5] @ vectors.T), axis=1)[:, :3] + 100
    assert np.array_equal(ids, expected)
    np.testing.assert_allclose(scores[:, 0], 1.0, rtol=1e-5)


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_filtered_search_returns_k_whenever_k_pass(tmp_path: Path, kind: str) -> None:
    index, vectors = filled(tmp_path / "i.faiss", 2000, kind=kind)
    allowed = np.arange(100, 2100, 97)  # 21 scattered vectors: too sparse for a plain HNSW walk
    _scores, ids = index.search(vectors[0], 10, SearchScope.of_ids(allowed))
    assert len(set(ids[0].tolist())) == 10 and set(ids[0].tolist()) <= set(allowed.tolist())
    exact = allowed[np.argsort(-(vectors[allowed - 100] @ vectors[0]))[:10]]
    assert ids[0].tolist() == exact.tolist()


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_removed_vectors_never_come_back(tmp_path: Path, kind: str) -> None:
    index, vectors = filled(tmp_path / "i.faiss", 100, kind=kind)
    index.remove([100, 101])
    _, ids = index.search(vectors[0], 5)
    assert 100 not in ids[0] and len(index) == 98 and 100 not in index.ids()
    index.save()
    reopened = FaissIndex(tmp_path / "i.faiss", DIMS, IndexSettings(kind=kind))  # type: ignore[arg-type]
    assert len(reopened) == 98 and 101 not in reopened.search(vectors[1], 5)[1][0]


def test_hnsw_compacts_when_tombstones_pile_up(tmp_path: Path) -> None:
    index, _ = filled(tmp_path / "i.faiss", 100, kind="hnsw")
    index.remove(list(range(100, 130)))
    assert len(index) == 70 and index._index.ntotal == 70  # rebuilt without the dead vectors


def test_save_is_atomic_and_a_stale_temp_file_is_harmless(tmp_path: Path) -> None:
    path = tmp_path / "i.faiss"
    index, vectors = filled(path, 20)
    index.save()
    (tmp_path / "i.faiss.tmp").write_bytes(b"half-written garbage from a crash")
    reopened = FaissIndex(path, DIMS, IndexSettings())
    assert len(reopened) == 20
    assert reopened.search(vectors[3], 1)[1][0, 0] == 103
    reopened.save()
    assert not (tmp_path / "i.faiss.tmp").exists()


def test_empty_index_and_empty_filter_return_no_hits(tmp_path: Path) -> None:
    index = FaissIndex(tmp_path / "i.faiss", DIMS, IndexSettings())
    assert (index.search(unit_vectors(1), 5)[1] == -1).all()
    index.add(np.arange(3), unit_vectors(3))
    assert (index.search(unit_vectors(1), 5, SearchScope.of_ids(np.array([], dtype=np.int64)))[1] == -1).all()


def test_wide_filters_walk_the_graph_and_still_return_k(tmp_path: Path) -> None:
    index, vectors = filled(tmp_path / "i.faiss", 2000, kind="hnsw", exact_threshold=5)
    allowed = np.arange(100, 2100, 7)  # ~286 vectors, above the exact threshold: the graph walk is used
    _, ids = index.search(vectors[0], 10, SearchScope.of_ids(allowed))
    assert len(set(ids[0].tolist())) == 10 and set(ids[0].tolist()) <= set(allowed.tolist())


def test_bulk_adds_build_on_several_threads_then_searches_go_back_to_one(tmp_path: Path) -> None:
    import faiss

    index = FaissIndex(tmp_path / "i.faiss", DIMS, IndexSettings(kind="hnsw", build_threads=2))
    vectors = unit_vectors(2000)
    index.add(np.arange(2000), vectors)  # a bulk batch: built with two threads
    assert faiss.omp_get_max_threads() == 1  # the search setting is back
    _scores, found = index.search(vectors[:200], 1)
    assert (found[:, 0] == np.arange(200)).mean() >= 0.99

"""FAISS index: exact vs HNSW choice, filtered search, deletions, atomic saves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from prodmatch.config import IndexKind, IndexSettings
from prodmatch.stores.faiss_index import FaissIndex
from prodmatch.stores.protocols import SearchScope
from tests.stores.vector_samples import DIMS, unit_vectors


def filled(path: Path, n: int, **settings: object) -> tuple[FaissIndex, np.ndarray]:
    index = FaissIndex(path, DIMS, IndexSettings(**settings))
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
    with pytest.raises(
        ValidationError, match="'auto', 'flat', 'hnsw' or 'ivf_sq8'"
    ):  # the settings name the valid kinds
        IndexSettings(kind="ivf_pq")


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
    reopened = FaissIndex(tmp_path / "i.faiss", DIMS, IndexSettings(kind=kind))
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


def clustered(n: int, dims: int = 32, seed: int = 0) -> np.ndarray:
    """Unit vectors around 40 centres: the shape of real embeddings, where IVF lists mean something."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((40, dims)).astype(np.float32)
    vectors = centres[rng.integers(0, 40, n)] + 0.5 * rng.standard_normal((n, dims)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


IVF_AT_2000 = {"exact_threshold": 500, "ivf_threshold": 2000}


def test_auto_kind_goes_flat_then_hnsw_then_ivf_sq8_by_size(tmp_path: Path) -> None:
    index = FaissIndex(tmp_path / "i.faiss", 32, IndexSettings(**IVF_AT_2000))
    vectors = clustered(3000)
    index.add(np.arange(400), vectors[:400])
    assert index.kind == "flat"
    index.add(np.arange(400, 1200), vectors[400:1200])
    assert index.kind == "hnsw"
    index.add(np.arange(1200, 3000), vectors[1200:])
    assert index.kind == "ivf_sq8" and len(index) == 3000
    assert np.array_equal(index.ids(), np.arange(3000))
    assert IndexSettings(kind="ivf_sq8").kind is IndexKind.IVF_SQ8  # a setting can force it


def test_a_bulk_load_past_the_threshold_builds_ivf_directly(tmp_path: Path) -> None:
    index = FaissIndex(tmp_path / "i.faiss", 32, IndexSettings(**IVF_AT_2000))
    index.add(np.arange(5000), clustered(5000))
    assert index.kind == "ivf_sq8" and (tmp_path / "i.faiss.f32").stat().st_size >= 5000 * 32 * 4


def recall_at_10(found: np.ndarray, vectors: np.ndarray, queries: np.ndarray, pool: np.ndarray) -> float:
    top = min(10, len(pool))
    exact = pool[np.argsort(-(queries @ vectors[pool].T), axis=1)[:, :top]]
    return float(np.mean([len(set(a) & set(b)) / top for a, b in zip(found.tolist(), exact.tolist(), strict=True)]))


def test_ivf_reranks_exactly_and_keeps_recall(tmp_path: Path) -> None:
    vectors = clustered(6000)
    index = FaissIndex(tmp_path / "i.faiss", 32, IndexSettings(kind="ivf_sq8"))
    index.add(np.arange(6000), vectors)
    queries = clustered(100, seed=7)
    scores, ids = index.search(queries, 10)
    assert recall_at_10(ids, vectors, queries, np.arange(6000)) >= 0.9
    # re-ranked scores are the exact inner products (not the 8-bit approximations), best first
    np.testing.assert_allclose(scores, np.einsum("qd,qkd->qk", queries, vectors[ids]), rtol=1e-5)
    assert (np.diff(scores, axis=1) <= 1e-6).all()


@pytest.mark.parametrize("every", [3, 997])  # a wide filter (bitmap inside the IVF scan) and a narrow one (exact)
def test_ivf_filtered_search_keeps_the_filter_and_the_recall(tmp_path: Path, every: int) -> None:
    vectors = clustered(6000)
    settings = IndexSettings(kind="ivf_sq8", ivf_exact_filter_max=100)
    index = FaissIndex(tmp_path / "i.faiss", 32, settings)
    index.add(np.arange(6000), vectors)
    allowed = np.arange(0, 6000, every)
    queries = clustered(50, seed=3)
    _, ids = index.search(queries, 10, SearchScope.of_ids(allowed))
    kept = ids[ids >= 0]
    assert set(kept.tolist()) <= set(allowed.tolist()) and (ids >= 0).sum(axis=1).min() == min(10, len(allowed))
    assert recall_at_10(ids, vectors, queries, allowed) >= (1.0 if len(allowed) <= 100 else 0.9)


def test_ivf_reopens_mapped_then_accepts_writes(tmp_path: Path) -> None:
    vectors = clustered(4000)
    index = FaissIndex(tmp_path / "i.faiss", 32, IndexSettings(kind="ivf_sq8"))
    index.add(np.arange(3000), vectors[:3000])
    index.save()
    before = index.search(vectors[:20], 5)
    reopened = FaissIndex(tmp_path / "i.faiss", 32, IndexSettings(kind="ivf_sq8"))
    assert reopened._mapped and reopened.kind == "ivf_sq8" and len(reopened) == 3000
    np.testing.assert_array_equal(reopened.search(vectors[:20], 5)[1], before[1])
    reopened.add(np.arange(3000, 4000), vectors[3000:])  # FAISS cannot grow a mapped index: read in first
    reopened.remove([0, 1, 3500])
    assert len(reopened) == 3997 and not ({0, 1, 3500} & set(reopened.search(vectors[:2], 10)[1].ravel().tolist()))
    assert reopened.search(vectors[3600], 1)[1][0, 0] == 3600
    reopened.save()
    again = FaissIndex(tmp_path / "i.faiss", 32, IndexSettings(kind="ivf_sq8"))
    assert len(again) == 3997 and again.search(vectors[3600], 1)[1][0, 0] == 3600


def test_tombstones_ride_in_the_index_file_and_old_npz_files_still_open(tmp_path: Path) -> None:
    import io

    import faiss

    index, vectors = filled(tmp_path / "i.faiss", 200, kind="hnsw")
    index.remove([100, 105])  # below the compaction ratio: tombstones
    index.save()
    assert set(FaissIndex(tmp_path / "i.faiss", DIMS, IndexSettings(kind="hnsw")).ids().tolist()).isdisjoint({100, 105})
    legacy = tmp_path / "old.faiss"  # the np.savez format of earlier releases
    buffer = io.BytesIO()
    np.savez(buffer, index=faiss.serialize_index(index._index), tombstones=np.array([100, 105], dtype=np.int64))
    legacy.write_bytes(buffer.getvalue())
    old = FaissIndex(legacy, DIMS, IndexSettings(kind="hnsw"))
    assert len(old) == 198 and old.search(vectors[1], 1)[1][0, 0] == 101
    old.save()
    assert legacy.read_bytes()[:2] != b"PK" and len(FaissIndex(legacy, DIMS, IndexSettings(kind="hnsw"))) == 198

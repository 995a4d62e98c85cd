"""The 1M benchmark's pieces at a toy size: clustered data with 5% filters, exact ground truth, build and search
phases reporting what docs/benchmarks.md quotes (the FAISS index itself is tested in tests/stores)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from prodmatch.bench.million import exact_top, filters, generate, ground_truth, phase_build, phase_search


def test_data_is_unit_vectors_with_two_five_percent_filters(tmp_path: Path) -> None:
    generate(4000, 60, tmp_path)
    vectors = np.load(tmp_path / "vectors.npy")
    assert vectors.shape == (4000, 512) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    kept = {name: len(ids) / 4000 for name, ids in filters(tmp_path).items() if ids is not None}
    assert all(0.03 < share < 0.08 for share in kept.values()), kept
    queries = np.load(tmp_path / "queries.npy")
    best = (queries @ vectors.T).max(axis=1)
    assert 0.7 < float(np.median(best)) < 0.99  # most queries are another view of a stored vector, not a copy


def test_exact_top_merges_chunks_like_one_brute_force_search() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((250_000, 8)).astype(np.float32)  # > one 100k chunk
    queries = rng.standard_normal((3, 8)).astype(np.float32)
    expected = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    assert [set(row) for row in exact_top(vectors, queries, None).tolist()] == [set(r) for r in expected.tolist()]


def test_build_and_search_phases_report_the_quoted_figures(tmp_path: Path) -> None:
    data, index = tmp_path / "data", tmp_path / "index"
    generate(3000, 50, data)
    ground_truth(data, warmup=10)
    index.mkdir()
    built = phase_build(data, index)
    assert built["kind"] == "flat" and built["disk_mb"] > 5 and built["build_peak_rss_mb"] > 0
    row = phase_search(data, index, warmup=10)
    for name in ("plain", "5% random", "5% clustered"):
        assert row[name]["recall@10"] == 1.0  # exact at this size
        assert row[name]["cpu_p50_ms"] > 0 and row[name]["p50_ms"] <= row[name]["p95_ms"]
    assert row["open_s"] < 5

"""Vector stores compared on synthetic data: ingest time, query p50/p95 with and without a filter, recall@10
against exact search, for FAISS (HNSW), pgvector (HNSW), Qdrant local mode, Milvus and Chroma (HNSW).

    python -m prodmatch.bench.vector_stores --count 100000 --stores faiss,pgvector,milvus \
        --pgvector-url pgvector://postgres@127.0.0.1:5432/bench --milvus-url milvus://127.0.0.1:19530

Vectors are clustered unit vectors (512-d, like CLIP ViT-B/32); queries are noisy copies of stored vectors.
Each product has a `category` (one of 20: the filter selects ~5%) and a `price`. Servers are yours to start (the
benchmark measures what its URLs name). FAISS is given its filter as the
allowed-id set the metadata store would compute (the SQL lookup is not timed here); pgvector and Qdrant
evaluate the filter inside their own search, and so do Milvus and Chroma.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from prodmatch.config import IndexSettings
from prodmatch.stores.factory import open_vector_index
from prodmatch.stores.filters import parse_filters, searchable
from prodmatch.stores.protocols import SearchScope, VectorIndex
from prodmatch.stores.records import VectorLabel

DIMS = 512
CATEGORIES = 20
K = 10


def synthetic(count: int, queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[VectorLabel]]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((count // 50 + 1, DIMS)).astype(np.float32)
    members = centres[rng.integers(0, len(centres), count)]
    vectors = members + 0.6 * rng.standard_normal((count, DIMS)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    picks = rng.choice(count, queries, replace=False)
    noisy = vectors[picks] + 0.02 * rng.standard_normal((queries, DIMS)).astype(np.float32)
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
    labels = [
        VectorLabel(f"p{i}", searchable({"category": f"c{i % CATEGORIES}", "price": int(rng.integers(5, 500))}))
        for i in range(count)
    ]
    return vectors, noisy, labels


def exact_top(vectors: np.ndarray, queries: np.ndarray, allowed: np.ndarray | None) -> list[set[int]]:
    ids = np.arange(len(vectors)) if allowed is None else allowed
    scores = queries @ vectors[ids].T
    return [set(ids[np.argsort(-row)[:K]].tolist()) for row in scores]


def timed(run: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = run()
    return (time.perf_counter() - started) * 1000, result


def measure(index: VectorIndex, vectors: np.ndarray, queries: np.ndarray, labels: list[VectorLabel]) -> dict[str, Any]:
    ids = np.arange(len(vectors), dtype=np.int64)
    started = time.perf_counter()
    for start in range(0, len(vectors), 5000):
        index.add(ids[start : start + 5000], vectors[start : start + 5000], labels[start : start + 5000])
    index.save()
    row: dict[str, Any] = {"kind": index.kind, "ingest_s": round(time.perf_counter() - started, 1)}
    allowed = ids[ids % CATEGORIES == 3]
    filtered = SearchScope(parse_filters(["category=c3"]), lambda: allowed)
    for name, scope, subset in (("plain", None, None), ("filtered", filtered, allowed)):
        truth = exact_top(vectors, queries, subset)
        timings, hits = [], 0
        index.search(queries[0], K, scope)  # warm
        for query, expected in zip(queries, truth, strict=True):
            took, (_scores, found) = timed(functools.partial(index.search, query, K, scope))
            timings.append(took)
            hits += len(expected & set(found[0].tolist()))
        row[f"{name}_p50_ms"] = round(statistics.median(timings), 2)
        row[f"{name}_p95_ms"] = round(float(np.percentile(timings, 95)), 2)
        row[f"{name}_recall@10"] = round(hits / (K * len(queries)), 4)
    return row


def open_index(kind: str, folder: Path, server_urls: dict[str, str]) -> VectorIndex:
    url = {"faiss": f"faiss://{folder / 'faiss'}", "qdrant+local": f"qdrant+local://{folder / 'qdrant'}"}.get(kind)
    return open_vector_index(url or server_urls[kind], "image", DIMS, IndexSettings())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--stores", default="faiss,qdrant+local")
    parser.add_argument("--pgvector-url", default="", help="pgvector://USER@HOST:PORT/DB of a server of yours")
    parser.add_argument("--milvus-url", default="", help="milvus://HOST:PORT of a server of yours")
    parser.add_argument("--chroma-url", default="", help="chroma://HOST:PORT of a server of yours")
    args = parser.parse_args()
    server_urls = {"pgvector": args.pgvector_url, "milvus": args.milvus_url, "chroma": args.chroma_url}
    for kind, url in server_urls.items():
        if kind in args.stores.split(",") and not url:
            parser.error(f"--stores {kind} needs --{kind}-url")
    vectors, queries, labels = synthetic(args.count, args.queries)
    with tempfile.TemporaryDirectory() as folder:
        for kind in args.stores.split(","):
            index = open_index(kind, Path(folder), server_urls)
            try:
                print(json.dumps({"store": kind, "count": args.count, **measure(index, vectors, queries, labels)}))
            finally:
                index.close()


if __name__ == "__main__":
    main()

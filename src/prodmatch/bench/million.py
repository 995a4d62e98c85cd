"""FAISS at catalog scale: build time, peak RSS, bytes on disk, open time, recall@10 against exact search, and
p50/p95 search latency with and without a 5% filter, for the index kind IndexSettings picks at each size.

    python -m prodmatch.bench.million --sizes 100000,1000000 --dir /tmp/million --out million.json

The data is SYNTHETIC: clustered 512-d unit vectors shaped like real embeddings (a common mean direction,
variance in a few dozen directions, 2,000 clusters of Zipf-like sizes; calibrated against EfficientNet
embeddings of the sample photos), and synthetic metadata: a `category` drawn at random (category 3 keeps 5%) and
a `group` that follows the cluster for 80% of vectors (group 3 keeps ~5%, but only in a few regions of the
space: the hard case for filtered ANN). Queries: 80% another view of a catalog vector (cosine ~0.9 to it), 20%
new points from the same mixture. Filters reach FAISS as allowed ids, as the metadata store hands them over.

Each phase runs in its own process so that its peak RSS (VmHWM) is its own: build (bulk add + save), then
search (page cache of the index files dropped first, so open and first query are cold).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from prodmatch.config import IndexSettings
from prodmatch.stores.faiss_index import FaissIndex
from prodmatch.stores.protocols import SearchScope

DIMS = 512
CATEGORIES = 20
FILTER_VALUE = 3
K = 10


class Mixture:
    """The generative model shared by catalog vectors and fresh queries."""

    def __init__(self, clusters: int = 2000, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        scales = ((np.arange(DIMS) + 1.0) ** -0.55).astype(np.float32)
        self.scales = scales / np.sqrt((scales**2).sum())  # variance in a few dozen directions, like embeddings
        self.rotation = np.linalg.qr(rng.standard_normal((DIMS, DIMS)))[0].astype(np.float32)
        mean = rng.standard_normal(DIMS).astype(np.float32)
        self.mean = 0.9 * mean / np.linalg.norm(mean)  # embeddings share a common direction
        self.centres = rng.standard_normal((clusters, DIMS)).astype(np.float32) * self.scales
        weights = 1.0 / (np.arange(clusters) + 10.0)  # skewed popularity, as product types are
        self.weights = weights / weights.sum()

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        cluster = rng.choice(len(self.centres), n, p=self.weights)
        noise = rng.standard_normal((n, DIMS), dtype=np.float32) * self.scales
        return normalise((self.mean + self.centres[cluster] + 0.9 * noise) @ self.rotation.T), cluster

    def perturb(self, vectors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Another photo of the same product: cosine ~0.9 to the original."""
        noise = rng.standard_normal(vectors.shape, dtype=np.float32) * self.scales
        return normalise(vectors + 0.45 * (noise @ self.rotation.T))


def normalise(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def generate(n: int, queries: int, out: Path) -> None:
    """vectors.npy (vector id = row), category.npy, group.npy, queries.npy under OUT; written in chunks."""
    mixture, rng = Mixture(), np.random.default_rng(1)
    out.mkdir(parents=True, exist_ok=True)
    vectors = np.lib.format.open_memmap(out / "vectors.npy", mode="w+", dtype=np.float32, shape=(n, DIMS))
    clusters = np.empty(n, np.int64)
    for start in range(0, n, 50_000):
        stop = min(n, start + 50_000)
        vectors[start:stop], clusters[start:stop] = mixture.sample(stop - start, rng)
    np.save(out / "category.npy", rng.integers(0, CATEGORIES, n).astype(np.int8))
    follows = rng.random(n) < 0.8
    group = np.where(follows, (clusters * 7919) % CATEGORIES, rng.integers(0, CATEGORIES, n))
    np.save(out / "group.npy", group.astype(np.int8))
    fresh = queries // 5
    seen = mixture.perturb(np.asarray(vectors[np.sort(rng.choice(n, queries - fresh, replace=False))]), rng)
    query_vectors = np.vstack([seen, mixture.sample(fresh, rng)[0]])
    np.save(out / "queries.npy", query_vectors[rng.permutation(queries)])
    vectors.flush()


def exact_top(vectors: np.ndarray, queries: np.ndarray, allowed: np.ndarray | None) -> np.ndarray:
    """Ground truth ids (queries x K) by brute force, in chunks of the catalog."""
    best_scores = np.full((len(queries), K), -np.inf, np.float32)
    best_ids = np.full((len(queries), K), -1, np.int64)
    rows = np.arange(len(vectors)) if allowed is None else allowed
    for start in range(0, len(rows), 100_000):
        chunk = rows[start : start + 100_000]
        scores = queries @ np.asarray(vectors[chunk]).T
        all_scores = np.hstack([best_scores, scores])
        all_ids = np.hstack([best_ids, np.broadcast_to(chunk, scores.shape)])
        top = np.argpartition(-all_scores, K, axis=1)[:, :K]
        best_scores, best_ids = np.take_along_axis(all_scores, top, 1), np.take_along_axis(all_ids, top, 1)
    return best_ids


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM: ru_maxrss would carry over the parent's peak across fork + exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: the best there is


def disk_mb(directory: Path) -> float:
    """Bytes actually allocated (the re-rank file is sparse where ids are unused)."""
    return sum(p.stat().st_blocks * 512 for p in directory.iterdir() if p.is_file()) / 1e6


def phase_build(data: Path, index_dir: Path) -> dict[str, Any]:
    vectors = np.load(data / "vectors.npy", mmap_mode="r")
    started, cpu = time.perf_counter(), time.process_time()
    index = FaissIndex(index_dir / "vectors-image.faiss", DIMS, IndexSettings())
    index.add(np.arange(len(vectors)), vectors)  # one bulk batch, as a fresh ingest of a full catalog hands it over
    index.save()
    return {
        "kind": index.kind,
        "build_s": round(time.perf_counter() - started, 1),
        "build_cpu_s": round(time.process_time() - cpu, 1),
        "build_peak_rss_mb": round(peak_rss_mb()),
        "disk_mb": round(disk_mb(index_dir)),
    }


def drop_page_cache(directory: Path) -> None:
    """Forget the cached pages of the index files, so that open and first query are measured cold."""
    for path in directory.iterdir():
        with open(path, "rb") as handle:
            os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def timed(
    index: FaissIndex, queries: np.ndarray, scope: SearchScope | None
) -> tuple[np.ndarray, list[float], list[float]]:
    """(ids found, wall ms, CPU ms of this thread) per query. On a shared machine the wall time is mostly waiting
    for a core; the CPU time is what the query costs on an idle one."""
    found, times, cpu = [], [], []
    for query in queries:
        started, cpu_started = time.perf_counter(), time.thread_time()
        found.append(index.search(query, K, scope)[1][0])
        times.append((time.perf_counter() - started) * 1000)
        cpu.append((time.thread_time() - cpu_started) * 1000)
    return np.array(found), times, cpu


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / K for a, b in zip(found.tolist(), truth.tolist(), strict=True)]))


def filters(data: Path) -> dict[str, np.ndarray | None]:
    return {
        "plain": None,
        "5% random": np.flatnonzero(np.load(data / "category.npy") == FILTER_VALUE),
        "5% clustered": np.flatnonzero(np.load(data / "group.npy") == FILTER_VALUE),
    }


def ground_truth(data: Path, warmup: int) -> None:
    """truth.npz: the exact top K of every timed query, per filter (computed here, outside the timed phases)."""
    vectors = np.load(data / "vectors.npy", mmap_mode="r")
    queries = np.load(data / "queries.npy")[:-warmup]
    truth = {name: exact_top(vectors, queries, allowed) for name, allowed in filters(data).items()}
    np.savez(data / "truth.npz", **truth)  # type: ignore[arg-type]  # numpy's hints miss **arrays


def phase_search(data: Path, index_dir: Path, warmup: int) -> dict[str, Any]:
    queries = np.load(data / "queries.npy")
    truths = np.load(data / "truth.npz")
    size = len(np.load(data / "category.npy"))
    drop_page_cache(index_dir)
    started = time.perf_counter()
    index = FaissIndex(index_dir / "vectors-image.faiss", DIMS, IndexSettings())
    row: dict[str, Any] = {"open_s": round(time.perf_counter() - started, 2)}
    started = time.perf_counter()
    index.search(queries[0], K)
    row["first_query_ms"] = round((time.perf_counter() - started) * 1000, 1)
    timed(index, queries[-warmup:], None)  # page in what steady traffic keeps hot; not measured
    for name, allowed in filters(data).items():
        scope = None if allowed is None else SearchScope.of_ids(allowed)
        found, times, cpu = timed(index, queries[:-warmup], scope)
        row[name] = {
            "kept": 1.0 if allowed is None else round(len(allowed) / size, 3),
            "recall@10": round(recall(found, truths[name]), 3),
            "p50_ms": round(statistics.median(times), 2),
            "p95_ms": round(statistics.quantiles(times, n=20)[18], 2),
            "cpu_p50_ms": round(statistics.median(cpu), 2),
            "cpu_p95_ms": round(statistics.quantiles(cpu, n=20)[18], 2),
        }
    row["search_peak_rss_mb"] = round(peak_rss_mb())
    return row


def run_phase(phase: str, data: Path, index_dir: Path, warmup: int) -> dict[str, Any]:
    """One phase in a fresh process: its peak RSS is its own."""
    command = [sys.executable, "-m", "prodmatch.bench.million", "--phase", phase, "--data", str(data)]
    command += ["--index-dir", str(index_dir), "--warmup", str(warmup)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def bench_size(n: int, queries: int, warmup: int, work: Path) -> dict[str, Any]:
    data, index_dir = work / f"n{n}" / "data", work / f"n{n}" / "index"
    if not (data / "queries.npy").exists():
        started = time.perf_counter()
        generate(n, queries + warmup, data)
        ground_truth(data, warmup)
        print(f"n={n}: data + ground truth in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    if not (index_dir / "vectors-image.faiss").exists():
        index_dir.mkdir(parents=True, exist_ok=True)
        built = run_phase("build", data, index_dir, warmup)
        (index_dir / "build.json").write_text(json.dumps(built))
        print(f"n={n}: built {built}", file=sys.stderr, flush=True)
    row = {"n": n, **json.loads((index_dir / "build.json").read_text())}
    return {**row, **run_phase("search", data, index_dir, warmup)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--queries", type=int, default=500, help="timed queries (each also scored for recall)")
    parser.add_argument("--warmup", type=int, default=200, help="untimed queries first (pages the index in)")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/prodmatch-million"), help="data and indexes (reused)")
    parser.add_argument("--out", type=Path, help="write the rows here as JSON")
    parser.add_argument("--phase", choices=["build", "search"], help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--index-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase == "build":
        print(json.dumps(phase_build(args.data, args.index_dir)))
        return
    if args.phase == "search":
        print(json.dumps(phase_search(args.data, args.index_dir, args.warmup)))
        return
    rows = []
    for n in (int(size) for size in args.sizes.split(",")):
        rows.append(bench_size(n, args.queries, args.warmup, args.dir))
        print(json.dumps(rows[-1]), flush=True)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()

"""`prodmatch serve` over a large catalog vs a small one: image- and text-match latency of the same queries, in one
run, with the servers' per-stage timings.

    python -m prodmatch.bench.serve_scale --myntra DATA/myntra-dev --sizes 1000,100000 --dir /tmp/serve-scale

Each data dir holds the real sample catalog (myntra-dev, ingested with the real model: its photos are the
queries) plus SYNTHETIC filler products up to the size, written straight into the stores (embedding 100k photos
on this machine would take hours): random unit vectors in every space of the model, a name of 4-7 words drawn
from the sample's product names and the attributes of a random sample product (so lexical search, keywords and
facets see a catalog of realistic texts). The fill is the product's bulk path: the metadata store's batch upsert
in batches of 5,000, then one FAISS add per space (the index kind is what the catalog picks by size). Both servers
run at once on 127.0.0.1 and are queried one request at a time, alternating between them, so the machine's load
weighs on both alike.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from prodmatch.bench.serve import TEXTS, percentile
from prodmatch.composition import Catalog, open_catalog
from prodmatch.config import Settings
from prodmatch.stores.records import ImageRef, Product, ProductUpsert, SpaceVectors, VectorLabel

MODEL = "offline-effnet-minilm"
BATCH = 5000


def ingest_sample(myntra: Path, folder: Path) -> None:
    command = [sys.executable, "-m", "prodmatch", "ingest", str(myntra / "catalog.csv"), "--data-dir", str(folder)]
    command += ["--model", MODEL, "--id-col", "ProductId", "--name-col", "ProductTitle", "--image-col", "Image"]
    subprocess.run(command, check=True, capture_output=True)


class Filler:
    """Synthetic products shaped like the sample's: names from its words, attributes of its products."""

    def __init__(self, sample: list[Product], spaces: dict[str, int], seed: int) -> None:
        self.words = sorted({word for product in sample for word in (product.name or "").split()})
        self.attributes = [product.attributes for product in sample]
        self.spaces = spaces
        self.rng = np.random.default_rng(seed)

    def batch(self, start: int, count: int) -> list[ProductUpsert]:
        vectors = {space: self._unit(count, dims) for space, dims in self.spaces.items()}
        picks = self.rng.integers(0, len(self.attributes), count)
        items = []
        for offset in range(count):
            number = start + offset
            sha = f"{number:064x}"
            name = " ".join(self.rng.choice(self.words, int(self.rng.integers(4, 8))))
            attributes = dict(self.attributes[int(picks[offset])])
            product = Product(f"s{number}", name, name, attributes, [ImageRef(f"s{number}.jpg", sha)], sha, sha)
            spaces = [
                SpaceVectors(space, rows[offset : offset + 1], [sha] if space == "image" else None)
                for space, rows in vectors.items()
            ]
            items.append(ProductUpsert(product, spaces))
        return items

    def _unit(self, count: int, dims: int) -> np.ndarray:
        rows = self.rng.standard_normal((count, dims), dtype=np.float32)
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        return rows


def grow(folder: Path, size: int) -> dict[str, Any]:
    """Add synthetic products until the catalog at FOLDER holds SIZE: the metadata store in batches, then each
    space's index in one add (one build on all cores, straight to the kind the size calls for)."""
    started = time.perf_counter()
    with open_catalog(Settings(data_dir=folder)) as catalog:
        catalog.stores.open_indexes()  # checked against the store before it moves ahead
        have = catalog.store.count()
        filler = Filler(catalog.store.page(0, have), dict(catalog.record.spaces), seed=size)
        ids: dict[str, list[np.ndarray]] = {space: [] for space in filler.spaces}
        vectors: dict[str, list[np.ndarray]] = {space: [] for space in filler.spaces}
        labels: dict[int, VectorLabel] = {}
        for start in range(have, size, BATCH):
            changes = catalog.store.upsert(filler.batch(start, min(BATCH, size - start)))
            for space, (space_ids, space_vectors) in changes.added.items():
                ids[space].append(space_ids)
                vectors[space].append(space_vectors)
            labels.update(changes.labels)
        stored = time.perf_counter()
        kinds = {}
        for space in filler.spaces:
            if ids[space]:
                index, all_ids = catalog.stores.index(space), np.concatenate(ids[space])
                index.add(all_ids, np.vstack(vectors[space]), [labels[int(i)] for i in all_ids])
                kinds[space] = index.kind
        catalog.stores.save()
    took = time.perf_counter() - started
    return {"size": size, "fill_s": round(took, 1), "store_s": round(stored - started, 1), "index_kinds": kinds}


def open_stages(folder: Path) -> dict[str, float]:
    """Seconds for each step of what a server does before it is ready (Catalog.open, then warm()), in-process."""
    marks, started = {}, time.perf_counter()
    catalog = Catalog.open(Settings(data_dir=folder))
    try:
        marks["open"] = time.perf_counter()
        catalog.embedder()
        marks["model"] = time.perf_counter()
        catalog.stores.open_indexes()
        marks["indexes"] = time.perf_counter()
        catalog.facts.lexical()
        marks["lexical"] = time.perf_counter()
    finally:
        catalog.close()
    stages, last = {}, started
    for name, moment in marks.items():
        stages[name], last = round(moment - last, 2), moment
    return stages


def serve(folder: Path, port: int) -> tuple[subprocess.Popen[bytes], float]:
    """A server over FOLDER on 127.0.0.1:PORT, and the seconds from its start until /ready answered 200."""
    command = [sys.executable, "-m", "prodmatch", "serve", "--data-dir", str(folder), "--port", str(port)]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                return process, time.perf_counter() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.terminate()
    raise RuntimeError(f"the server on port {port} did not become ready")


def ask(http: httpx.Client, mode: str, number: int, photos: list[bytes]) -> tuple[float, dict[str, float]]:
    """One match: wall milliseconds and the server's stage timings. Each photo gets fresh trailing bytes (ignored
    by decoders) so that the server's embedding cache never answers; each text a fresh number, likewise."""
    started = time.perf_counter()
    if mode == "image":
        data = photos[number % len(photos)] + os.urandom(16)
        response = http.post("/v1/match/image?timings=1", files={"image": ("q.jpg", data, "image/jpeg")})
    else:
        response = http.post("/v1/match/text?timings=1", json={"text": f"{TEXTS[number % len(TEXTS)]} {number}"})
    took = (time.perf_counter() - started) * 1000
    response.raise_for_status()
    return took, response.json().get("timings") or {}


def measure(urls: dict[int, str], photos: list[bytes], mode: str, requests: int, warmup: int) -> dict[int, Any]:
    """REQUESTS matches per server, one at a time, alternating servers (and which goes first) request by request."""
    walls: dict[int, list[float]] = {size: [] for size in urls}
    stages: dict[int, dict[str, list[float]]] = {size: {} for size in urls}
    clients = {size: httpx.Client(base_url=url, timeout=120) for size, url in urls.items()}
    try:
        for number in range(warmup + requests):
            order = list(urls) if number % 2 == 0 else list(reversed(urls))
            for size in order:
                took, timings = ask(clients[size], mode, number, photos)
                if number >= warmup:
                    walls[size].append(took)
                    for stage, ms in timings.items():
                        stages[size].setdefault(stage, []).append(ms)
    finally:
        for client in clients.values():
            client.close()
    return {size: summary(walls[size], stages[size]) for size in urls}


def summary(walls: list[float], stages: dict[str, list[float]]) -> dict[str, Any]:
    return {
        "requests": len(walls),
        "p50_ms": round(statistics.median(walls), 1),
        "p95_ms": round(percentile(walls, 0.95), 1),
        "stage_p50_ms": {stage: round(statistics.median(values), 2) for stage, values in sorted(stages.items())},
    }


def prepare(args: argparse.Namespace, sizes: list[int]) -> list[dict[str, Any]]:
    """The sample catalog and one data dir per size (reused when present)."""
    sample = args.dir / "sample"
    if not sample.exists():
        ingest_sample(args.myntra, sample)
    fills = []
    for size in sizes:
        folder, done = args.dir / f"n{size}", args.dir / f"n{size}" / "filled.json"
        if not done.exists():  # a fill cut short is started again
            shutil.rmtree(folder, ignore_errors=True)
            shutil.copytree(sample, folder)
            fills.append(grow(folder, size))
            done.write_text(json.dumps(fills[-1]))
            print(json.dumps(fills[-1]), flush=True)
    return fills


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--myntra", type=Path, required=True, help="the myntra-dev sample folder")
    parser.add_argument("--sizes", default="1000,100000")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/prodmatch-serve-scale"))
    parser.add_argument("--requests", type=int, default=200, help="matches per server and mode")
    parser.add_argument("--warmup", type=int, default=20, help="untimed matches per server and mode first")
    parser.add_argument("--modes", default="image,text")
    parser.add_argument("--base-port", type=int, default=8710)
    parser.add_argument("--fill-only", action="store_true", help="build the data dirs and stop")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    prepare(args, sizes)
    if args.fill_only:
        return
    for size in sizes:
        print(json.dumps({"size": size, "open_stages_s": open_stages(args.dir / f"n{size}")}), flush=True)
    servers, ready = {}, {}
    try:
        for i, size in enumerate(sizes):  # one after the other: each one's start-up time alone
            servers[size], ready[size] = serve(args.dir / f"n{size}", args.base_port + i)
        print(json.dumps({"ready_s": {size: round(s, 1) for size, s in ready.items()}}), flush=True)
        urls = {size: f"http://127.0.0.1:{args.base_port + i}" for i, size in enumerate(sizes)}
        photos = [path.read_bytes() for path in sorted((args.myntra / "images").glob("*.jpg"))[:50]]
        for mode in args.modes.split(","):
            report = measure(urls, photos, mode, args.requests, args.warmup)
            ratio = report[sizes[-1]]["p50_ms"] / report[sizes[0]]["p50_ms"]
            print(json.dumps({"mode": mode, "p50_ratio": round(ratio, 2), **report}), flush=True)
    finally:
        for process in servers.values():
            process.terminate()
            process.wait(timeout=60)


if __name__ == "__main__":
    main()

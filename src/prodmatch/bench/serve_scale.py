"""`prodmatch serve` over a large catalog vs a small one: image-match p50 of the same photos, in one run.

    python -m prodmatch.bench.serve_scale --myntra DATA/myntra-dev --sizes 1000,100000 --dir /tmp/serve-scale

Each data dir holds the real sample catalog (myntra-dev, ingested with the real model: its photos are the
queries) plus SYNTHETIC filler products up to the size: random unit vectors in every space of the model, a
name, a category and a price, written straight into the stores (embedding 100k photos on this machine would
take hours). Both servers run at once on 127.0.0.1 and are queried in alternating rounds, so the machine's load
weighs on both alike.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from prodmatch.bench.serve import bench_serve
from prodmatch.composition import open_catalog
from prodmatch.config import Settings
from prodmatch.stores.records import ImageRef, Product, ProductUpsert, SpaceVectors

MODEL = "offline-effnet-minilm"
BATCH = 2000


def ingest_sample(myntra: Path, folder: Path) -> None:
    command = [sys.executable, "-m", "prodmatch", "ingest", str(myntra / "catalog.csv"), "--data-dir", str(folder)]
    command += ["--model", MODEL, "--id-col", "ProductId", "--name-col", "ProductTitle", "--image-col", "Image"]
    subprocess.run(command, check=True, capture_output=True)


def filler(start: int, count: int, spaces: dict[str, int], rng: np.random.Generator) -> list[ProductUpsert]:
    items = []
    for number in range(start, start + count):
        sha = f"{number:064x}"
        product = Product(
            f"s{number}", f"Synthetic product {number}", f"synthetic product {number}",
            {"category": f"c{number % 20}", "price": int(number % 997)}, [ImageRef(f"s{number}.jpg", sha)],
            sha, sha,
        )  # fmt: skip
        vectors = []
        for space, dims in spaces.items():
            vector = rng.standard_normal((1, dims)).astype(np.float32)
            vectors.append(SpaceVectors(space, vector / np.linalg.norm(vector), [sha] if space == "image" else None))
        items.append(ProductUpsert(product, vectors))
    return items


def grow(folder: Path, size: int) -> None:
    """Add synthetic products until the catalog at FOLDER holds SIZE."""
    rng = np.random.default_rng(size)
    with open_catalog(Settings(data_dir=folder)) as catalog:
        have = catalog.store.count()
        spaces = dict(catalog.record.spaces)
        for start in range(have, size, BATCH):
            catalog.stores.upsert(filler(start, min(BATCH, size - start), spaces, rng))
        catalog.stores.save()


def serve(folder: Path, port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "prodmatch", "serve", "--data-dir", str(folder), "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(1)
    process.terminate()
    raise RuntimeError(f"the server on port {port} did not become ready")


def measure(urls: dict[int, str], photos: list[Path], rounds: int, requests: int) -> dict[int, Any]:
    p50s: dict[int, list[float]] = {size: [] for size in urls}
    for _ in range(rounds):
        for size, url in urls.items():
            report = bench_serve(url, ["image"], [1], requests, photos, warmup=10)[0]
            p50s[size].append(report["p50_ms"])
    return {size: {"p50_ms": round(statistics.median(v), 1), "round_p50s": v} for size, v in p50s.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--myntra", type=Path, required=True, help="the myntra-dev sample folder")
    parser.add_argument("--sizes", default="1000,100000")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/prodmatch-serve-scale"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=60, help="image matches per server per round")
    parser.add_argument("--base-port", type=int, default=8710)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    sample = args.dir / "sample"
    if not sample.exists():
        ingest_sample(args.myntra, sample)
    for size in sizes:
        if not (args.dir / f"n{size}").exists():
            shutil.copytree(sample, args.dir / f"n{size}")
            grow(args.dir / f"n{size}", size)
    servers = {size: serve(args.dir / f"n{size}", args.base_port + i) for i, size in enumerate(sizes)}
    try:
        urls = {size: f"http://127.0.0.1:{args.base_port + i}" for i, size in enumerate(sizes)}
        photos = sorted((args.myntra / "images").glob("*.jpg"))[:50]
        print(json.dumps(measure(urls, photos, args.rounds, args.requests)))
    finally:
        for process in servers.values():
            process.terminate()
            process.wait(timeout=60)


if __name__ == "__main__":
    main()

"""The metadata store's batch upsert alone: CPU and wall time per product for new products, then for replacing them
all (re-embedded), into a fresh SQLite file (or the store URL given).

    python -m prodmatch.bench.store_writes --count 2000 --batch 1000

Synthetic products shaped like the default model's: one 1280-d image vector and one 384-d text vector each.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np

from prodmatch.stores.factory import open_metadata_store
from prodmatch.stores.records import ImageRef, Product, ProductUpsert, SpaceVectors

SPACES = {"image": 1280, "text": 384}


def products(start: int, count: int, tag: str, rng: np.random.Generator) -> list[ProductUpsert]:
    items = []
    for number in range(start, start + count):
        sha = f"{number:064x}"
        attributes = {"category": f"c{number % 20}", "price": number % 997}
        product = Product(f"s{number}", f"name {number} {tag}", f"name {number}", attributes, [ImageRef("x.jpg", sha)])
        vectors = [
            SpaceVectors(space, rng.standard_normal((1, dims), dtype=np.float32), [sha] if space == "image" else None)
            for space, dims in SPACES.items()
        ]
        items.append(ProductUpsert(product, vectors))
    return items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--store-url", default="", help="an empty store of yours; default a temporary SQLite file")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        store = open_metadata_store(args.store_url or f"sqlite:///{folder}/metadata.db")
        try:
            for phase in ("insert", "replace"):
                batches = [
                    products(s, min(args.batch, args.count - s), phase, rng) for s in range(0, args.count, args.batch)
                ]
                wall, cpu = time.perf_counter(), time.process_time()
                for batch in batches:
                    store.upsert(batch)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                row = {"phase": phase, "count": args.count, "batch": args.batch, "wall_s": round(wall, 2)}
                print(
                    json.dumps({**row, "cpu_s": round(cpu, 2), "cpu_ms_per_product": round(1000 * cpu / args.count, 2)})
                )
        finally:
            store.close()


if __name__ == "__main__":
    main()

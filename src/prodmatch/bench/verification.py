"""What geometric verification costs a lone photo match: median CPU and wall milliseconds per verification depth,
over hard altered photos of a catalog's own products, every depth asked the same photos in one interleaved run.

    python -m prodmatch.bench.verification --data-dir prodmatch-data --queries 40 --depths 0,20,50

Each depth opens the catalog with `matching.verify_depth` set to it (0 = off); the query log is not written.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from prodmatch.application.querying import Matcher, MatchQuery
from prodmatch.bench.stages import _NoLog
from prodmatch.composition import Catalog
from prodmatch.config import Settings
from prodmatch.matching.hard_alterations import customer_photo_hard


def hard_photos(catalog: Catalog, count: int) -> list[bytes]:
    """Hard altered copies of the first COUNT products' first photos (seeded, so every run asks the same)."""
    photos = []
    for index, product in enumerate(p for p in catalog.store.page(0, count) if p.images):
        image = Image.open(product.images[0].path).convert("RGB")
        image.thumbnail((800, 800))
        photos.append(customer_photo_hard(image, np.random.default_rng([11, index])))
    return photos


def measure(data_dir: Path, depths: list[int], count: int) -> dict[str, Any]:
    """Median and p95 milliseconds per depth, interleaved query by query so every depth sees the same load."""
    matchers = {}
    for depth in depths:
        settings = Settings(data_dir=data_dir)
        settings.matching.verify_depth = depth
        catalog = Catalog.open(settings)
        catalog.warm()
        matchers[depth] = Matcher(catalog, _NoLog(), 2000)
    photos = hard_photos(next(iter(matchers.values())).catalog, count)
    for matcher in matchers.values():  # warm-up: model, indexes, feature files in the page cache
        for photo in photos[:3]:
            matcher.match(MatchQuery(image=photo))
    wall: dict[int, list[float]] = {depth: [] for depth in depths}
    cpu: dict[int, list[float]] = {depth: [] for depth in depths}
    for photo in photos:
        for depth, matcher in matchers.items():
            started, started_cpu = time.perf_counter(), time.process_time()
            matcher.match(MatchQuery(image=photo, top_k=10))
            wall[depth].append((time.perf_counter() - started) * 1000)
            cpu[depth].append((time.process_time() - started_cpu) * 1000)
    for matcher in matchers.values():
        matcher.catalog.close()
    return {
        f"depth {depth}": {
            "cpu_median_ms": round(statistics.median(cpu[depth]), 1),
            "wall_median_ms": round(statistics.median(wall[depth]), 1),
            "wall_p95_ms": round(float(np.percentile(wall[depth], 95)), 1),
        }
        for depth in depths
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--depths", default="0,20,50")
    args = parser.parse_args()
    depths = [int(depth) for depth in args.depths.split(",")]
    print(json.dumps(measure(args.data_dir, depths, args.queries), indent=1))


if __name__ == "__main__":
    main()

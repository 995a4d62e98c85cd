"""The lexical index's cost: build time (store read + index) and size for N synthetic products, and the time of one
lexical query; and, against an existing catalog, the latency a hybrid text match adds over a dense one.

    python -m prodmatch.bench.lexical build --products 100000 --out /tmp/lexical-100k
    python -m prodmatch.bench.lexical latency --data-dir prodmatch-data --text "navy blue tshirts"

Synthetic products are named as bench.synthetic_catalog names them ("<colour> <type> style <n>", with Colour and
ProductType attributes and a price) but have no photos or vectors: the lexical index reads text and attributes only.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from prodmatch.application.querying import Matcher, MatchQuery
from prodmatch.bench.synthetic_catalog import COLOURS, TYPES
from prodmatch.composition import open_catalog
from prodmatch.config import Settings
from prodmatch.matching.lexical import LexicalIndex
from prodmatch.stores.factory import open_metadata_store
from prodmatch.stores.records import Product, ProductUpsert, QueryLogEntry

QUERIES = ("navy blue tshirts", "red dresses", "black shoes style 123", "green jackets")


class _NoLog:
    """The benchmark measures matching, not query-log writes."""

    def record(self, entry: QueryLogEntry) -> None:
        return None


def synthetic_products(count: int) -> list[Product]:
    rng = np.random.default_rng(0)
    colours, kinds = [*COLOURS, "Navy Blue"], TYPES
    products = []
    for number in range(count):
        colour, kind = colours[int(rng.integers(len(colours)))], kinds[int(rng.integers(len(kinds)))]
        name = f"{colour} {kind} style {number}"
        attributes = {"Colour": colour, "ProductType": kind, "price": round(float(rng.uniform(5, 200)), 2)}
        products.append(Product(f"P{number:06d}", name, name, attributes))
    return products


def build(count: int, out: Path) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    store = open_metadata_store(f"sqlite:///{out / 'metadata.db'}")
    try:
        if store.count() != count:
            products = synthetic_products(count)
            for start in range(0, count, 5000):
                store.upsert([ProductUpsert(p, None) for p in products[start : start + 5000]])
        wall, cpu = time.perf_counter(), time.process_time()
        index = LexicalIndex.build(store)
        figures: dict[str, Any] = {
            "products": len(index),
            "build_s": round(time.perf_counter() - wall, 2),
            "build_cpu_s": round(time.process_time() - cpu, 2),
            "bm25_matrix_mb": round(index.matrix_bytes() / 2**20, 3),
        }
        timings = []
        for _ in range(5):
            for text in QUERIES:
                started = time.perf_counter()
                index.top(index.query(text), 50)
                timings.append((time.perf_counter() - started) * 1000)
        figures["query_median_ms"] = round(statistics.median(timings), 2)
        return figures
    finally:
        store.close()


def latency(data_dir: Path, texts: list[str], repeats: int) -> dict[str, Any]:
    """Median ms of a text match, dense only and hybrid, alternating so both see the same machine load."""
    settings = Settings(data_dir=data_dir)
    with open_catalog(settings) as catalog:
        catalog.warm()
        matcher = Matcher(catalog, _NoLog(), 2000)
        catalog.facts.lexical()  # built once, as a serving process builds it on the first text query
        timings: dict[str, list[float]] = {"dense": [], "hybrid": []}
        for _ in range(repeats):
            for mode in timings:
                catalog.matcher.settings = settings.matching.model_copy(update={"hybrid_text": mode == "hybrid"})
                for text in texts:
                    started = time.perf_counter()
                    matcher.match(MatchQuery(text=text))
                    timings[mode].append((time.perf_counter() - started) * 1000)
        medians = {mode: round(statistics.median(values), 2) for mode, values in timings.items()}
        return {**medians, "added_ms": round(medians["hybrid"] - medians["dense"], 2), "queries": len(texts) * repeats}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    built = commands.add_parser("build")
    built.add_argument("--products", type=int, default=100_000)
    built.add_argument("--out", type=Path, required=True)
    timed = commands.add_parser("latency")
    timed.add_argument("--data-dir", type=Path, required=True)
    timed.add_argument("--text", action="append", default=None)
    timed.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    if args.command == "build":
        print(json.dumps(build(args.products, args.out)))
    else:
        print(json.dumps(latency(args.data_dir, args.text or list(QUERIES), args.repeats)))


if __name__ == "__main__":
    main()

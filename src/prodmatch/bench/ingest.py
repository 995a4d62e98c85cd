"""Ingest throughput against the model's own: is the pipeline keeping the model busy?

For one bundle and one catalog, in one process (so both figures see the same machine load):
- model only: products/s of the bundle's towers on already preprocessed inputs — each product's photos as
  pixels through the image tower, its text through the text tower, in batches of --batch (nothing else);
- ingest: products/s of a full ingest of the same catalog into a fresh, private data dir (read, hash, decode,
  resize, embed, thumbnails, store writes, near-duplicate links; calibration excluded);
and their ratio. Medians over --repeats runs, the two measurements interleaved.

On a shared machine the wall-clock ratio moves with the load; the CPU seconds per product of each (this process's
CPU time, every thread) do not, and model CPU / ingest CPU is the ratio a machine with these cores to itself would
reach if the pipeline overlapped perfectly: the physical bound.

    python -m prodmatch.bench.ingest ../shared/data/myntra-dev/catalog.csv --id-col ProductId --image-col Image \\
        --name-col ProductTitle --model offline-effnet-minilm --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from prodmatch.catalog.ingest import ColumnOptions
from prodmatch.catalog.schema import ImageResolver, RowError, detect_columns, to_draft
from prodmatch.composition import Catalog
from prodmatch.config import CatalogLocation, Settings
from prodmatch.models.bundle import Bundle
from prodmatch.models.embedder import Embedder
from prodmatch.models.factory import create_embedder, ensure_bundle
from prodmatch.models.preprocess import draft_side, open_image


def model_inputs(catalog: Path, columns: ColumnOptions, embedder: Embedder) -> tuple[list[np.ndarray], list[str]]:
    """Every product's photos preprocessed to pixels (one array per photo) and its text: the model's inputs."""
    mapping, rows = detect_columns(catalog, columns)
    assert mapping is not None, "empty catalog"
    resolver = ImageResolver(catalog.resolve().parent, None)
    short = draft_side(embedder.manifest.image.preprocess)
    pixels, texts = [], []
    for row in rows:
        try:
            draft = to_draft(row.line, row.data, mapping, resolver)
        except RowError:
            continue
        images = [open_image(path.read_bytes(), draft_short_side=short) for path in draft.image_paths]
        pixels += [embedder.pixels([image]) for image in images]
        texts.append(draft.text)
    return pixels, texts


def model_seconds(embedder: Embedder, pixels: list[np.ndarray], texts: list[str], batch: int) -> float:
    started = time.perf_counter()
    for start in range(0, len(pixels), batch):
        embedder.embed_pixels(np.concatenate(pixels[start : start + batch]))
    for start in range(0, len(texts), batch):
        embedder.embed_texts(texts[start : start + batch])
    return time.perf_counter() - started


def ingest_seconds(settings: Settings, bundle: Bundle, catalog: Path, columns: ColumnOptions) -> tuple[float, int]:
    with tempfile.TemporaryDirectory(prefix="prodmatch-bench-ingest-") as folder:
        location = CatalogLocation.embedded(Path(folder))
        opened = Catalog.open(settings, location=location, model=str(bundle.folder), create=True)
        try:
            report = opened.ingester().ingest_file(catalog, columns)
        finally:
            opened.close()
        return report.seconds, report.added


def run(args: argparse.Namespace) -> dict[str, Any]:
    settings = Settings()
    bundle = Bundle(args.model) if Path(args.model).is_dir() else ensure_bundle(args.model, settings, args.precision)
    columns = ColumnOptions(args.id_col, args.name_col, args.image_col, None)
    embedder = create_embedder(bundle, settings)
    pixels, texts = model_inputs(args.catalog, columns, embedder)
    model_seconds(embedder, pixels[: args.batch], texts[: args.batch], args.batch)  # warm-up
    model_runs, ingest_runs, model_cpu, ingest_cpu, products = [], [], [], [], 0
    for _ in range(args.repeats):
        cpu = time.process_time()
        model_runs.append(model_seconds(embedder, pixels, texts, args.batch))
        model_cpu.append((time.process_time() - cpu) / len(texts))
        cpu = time.process_time()
        seconds, products = ingest_seconds(settings, bundle, args.catalog, columns)
        ingest_cpu.append((time.process_time() - cpu) / max(products, 1))
        ingest_runs.append(seconds)
    model_rate = len(texts) / statistics.median(model_runs)
    ingest_rate = products / statistics.median(ingest_runs)
    model_ms, ingest_ms = 1000 * statistics.median(model_cpu), 1000 * statistics.median(ingest_cpu)
    return {
        "catalog": str(args.catalog),
        "model": bundle.manifest.name,
        "precision": bundle.manifest.precision,
        "products": products,
        "photos": len(pixels),
        "model_products_per_s": round(model_rate, 1),
        "ingest_products_per_s": round(ingest_rate, 1),
        "ratio": round(ingest_rate / model_rate, 3),
        "model_cpu_ms_per_product": round(model_ms, 1),
        "ingest_cpu_ms_per_product": round(ingest_ms, 1),  # the ingest's whole process: catalog open, model load too
        "cpu_bound_ratio": round(model_ms / ingest_ms, 3),
        "model_runs_s": [round(s, 2) for s in model_runs],
        "ingest_runs_s": [round(s, 2) for s in ingest_runs],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("catalog", type=Path)
    parser.add_argument("--model", default="offline-effnet-minilm", help="registry name or bundle folder")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--id-col")
    parser.add_argument("--name-col")
    parser.add_argument("--image-col")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    print(json.dumps(run(parser.parse_args()), indent=2))


if __name__ == "__main__":
    main()

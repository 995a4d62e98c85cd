"""`prodmatch model bench`: images/s and ms per text for each backend and precision, on this machine.

Each figure is the median of REPEATS timed runs after one warm-up run; inputs are fixed (synthetic
pixels and product-like texts), so backends and precisions are compared on identical work.
"""

from __future__ import annotations

import contextlib
import io
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from prodmatch.config import Settings
from prodmatch.models.bundle import Bundle, is_bundle
from prodmatch.models.factory import Backend, create_embedder, ensure_bundle
from prodmatch.models.preprocess import draft_side, open_image
from prodmatch.models.registry import Precision

_TEXTS = [
    "Boys blazing yellow printed cotton t-shirt with round neck",
    "Sony WH-1000XM5 wireless noise cancelling headphones, beige",
    "girls pink floral dress",
    "men's black leather jacket with zip pockets, slim fit, for winter",
]


@dataclass
class BenchRow:
    backend: str
    precision: str
    tower: str
    batch: int
    ms_per_item: float
    items_per_s: float


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    run()  # warm-up: first run allocates and picks kernels
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def bench_embedder(embedder: Any, backend: str, batches: Sequence[int], repeats: int) -> list[BenchRow]:
    """Image tower on preprocessed pixels (model only) and text tower on tokenised texts, per batch size."""
    manifest = embedder.manifest
    rows = []
    for batch in batches:
        pixels = (
            np.random.default_rng(0)
            .standard_normal((batch, 3, manifest.image.preprocess.crop, manifest.image.preprocess.crop))
            .astype(np.float32)
        )
        texts = [_TEXTS[i % len(_TEXTS)] for i in range(batch)]
        for tower, run in (
            ("image", lambda p=pixels: embedder.embed_pixels(p)),
            ("text", lambda t=texts: embedder.embed_texts(t)),
        ):
            seconds = median_seconds(run, repeats)
            rows.append(
                BenchRow(
                    backend,
                    manifest.precision,
                    tower,
                    batch,
                    round(seconds / batch * 1000, 3),
                    round(batch / seconds, 2),
                )
            )
    return rows


def bench_decode(image_path: Path | None, short_side: int, repeats: int) -> dict[str, float]:
    """ms to decode one large JPEG with full decoding vs DCT-scaled draft decoding."""
    if image_path is not None:
        data = Path(image_path).read_bytes()
    else:
        pixels = np.random.default_rng(0).integers(0, 255, (2400, 1800, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
        data = buffer.getvalue()
    full = median_seconds(lambda: open_image(data), repeats)
    draft = median_seconds(lambda: open_image(data, draft_short_side=short_side), repeats)
    size = Image.open(io.BytesIO(data)).size
    return {
        "width": size[0],
        "height": size[1],
        "full_decode_ms": round(full * 1000, 2),
        "draft_decode_ms": round(draft * 1000, 2),
        "speedup": round(full / draft, 2),
    }


def machine_info(settings: Settings) -> dict[str, Any]:
    import onnxruntime

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, StopIteration), open("/proc/cpuinfo") as cpuinfo:
        cpu = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "onnxruntime": onnxruntime.__version__,
        "intra_op_threads": settings.runtime.intra_op_threads or os.cpu_count(),
    }


@dataclass(frozen=True)
class BenchPlan:
    """What to measure: batch sizes, precisions (for a registry name), backends, and timed runs per figure."""

    batches: Sequence[int]
    precisions: Sequence[Precision]
    backends: Sequence[Backend]
    repeats: int = 5


def run_bench(
    target: str,
    settings: Settings,
    plan: BenchPlan,
    decode_image: Path | None = None,
    calibration_images: Sequence[Path] = (),
) -> dict[str, Any]:
    """Benchmark a registry model (each precision, exporting bundles as needed) or one bundle folder."""
    bundles = (
        [Bundle(Path(target))]
        if is_bundle(Path(target))
        else [ensure_bundle(target, settings, precision, calibration_images) for precision in plan.precisions]
    )
    rows = _bench_backends(bundles, settings, plan)
    short_side = draft_side(bundles[0].manifest.image.preprocess)
    return {
        "model": bundles[0].manifest.name,
        "machine": machine_info(settings),
        "repeats": plan.repeats,
        "rows": [asdict(row) for row in rows],
        "decode": bench_decode(decode_image, short_side, plan.repeats),
    }


def _bench_backends(bundles: list[Bundle], settings: Settings, plan: BenchPlan) -> list[BenchRow]:
    rows: list[BenchRow] = []
    if "onnx" in plan.backends:
        for bundle in bundles:
            rows += bench_embedder(create_embedder(bundle, settings, "onnx"), "onnx", plan.batches, plan.repeats)
    if "torch" in plan.backends:
        rows += bench_embedder(create_embedder(bundles[0], settings, "torch"), "torch", plan.batches, plan.repeats)
    if "triton" in plan.backends:  # the server at settings.model_url must serve this bundle (fingerprint-checked)
        remote = create_embedder(bundles[0], settings, "triton")
        try:
            rows += bench_embedder(remote, "triton", plan.batches, plan.repeats)
        finally:
            remote.close()
    return rows

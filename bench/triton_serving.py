"""Embeddings per second through Triton vs in-process ONNX Runtime, at batch 1 and 32, and Triton's overhead per
request (its latency minus the local one at the same batch).

    PYTHONPATH=. python bench/triton_serving.py --model clip-vit-b-32 --precision fp32

Triton is the tritonserver binary from nvidia-pytriton on this machine's CPU (Python backend running the same
ONNX graph with ONNX Runtime; see tests/servers.py), reached over loopback gRPC and HTTP; both sides use all
cores. Medians over --repeats runs per batch size, after one warm-up run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tests.servers import TritonServer

from prodmatch.config import Settings
from prodmatch.models.embedder import Embedder
from prodmatch.models.factory import create_embedder, ensure_bundle
from prodmatch.models.triton.embedder import TritonEmbedder
from prodmatch.models.triton.repository import RepositoryOptions, write_triton_repository


def median_ms(run: Callable[[], Any], repeats: int) -> float:
    run()  # warm-up
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def measure(embedder: Embedder, batch: int, repeats: int) -> dict[str, float]:
    crop = embedder.manifest.image.preprocess.crop
    pixels = np.random.default_rng(0).standard_normal((batch, 3, crop, crop)).astype(np.float32)
    texts = [f"slim fit cotton shirt in blue, size {i}" for i in range(batch)]
    image_ms = median_ms(lambda: embedder.embed_pixels(pixels), repeats)
    text_ms = median_ms(lambda: embedder.embed_texts(texts), repeats)
    return {
        "image_ms": round(image_ms, 2),
        "images_per_s": round(batch * 1000 / image_ms, 1),
        "text_ms": round(text_ms, 2),
        "texts_per_s": round(batch * 1000 / text_ms, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="clip-vit-b-32", help="registry name or bundle folder")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--batches", default="1,32")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    settings = Settings()
    bundle = ensure_bundle(args.model, settings, args.precision)
    local = create_embedder(bundle, settings, "onnx")
    with tempfile.TemporaryDirectory() as folder:
        write_triton_repository(bundle, Path(folder), RepositoryOptions(backend="python", max_batch=32))
        server = TritonServer(Path(folder))
        try:
            remotes = {
                protocol: TritonEmbedder(bundle, server.url(bundle.manifest.name, protocol))
                for protocol in ("grpc", "http")
            }
            for batch in (int(b) for b in args.batches.split(",")):
                repeats = max(3, args.repeats // max(1, batch // 4))
                rows = {"local": measure(local, batch, repeats)}
                rows |= {f"triton-{p}": measure(remote, batch, repeats) for p, remote in remotes.items()}
                for runtime, row in rows.items():
                    overhead = {
                        f"{tower}_overhead_ms": round(row[f"{tower}_ms"] - rows["local"][f"{tower}_ms"], 2)
                        for tower in ("image", "text")
                    }
                    print(
                        json.dumps(
                            {
                                "model": bundle.manifest.name,
                                "runtime": runtime,
                                "batch": batch,
                                **row,
                                **(overhead if runtime != "local" else {}),
                            }
                        )
                    )
            for remote in remotes.values():
                remote.close()
        finally:
            server.close()


if __name__ == "__main__":
    main()

"""Embeddings per second through a running Triton server vs in-process ONNX Runtime, per batch size, and Triton's
overhead per request (its latency minus the local one at the same batch).

    prodmatch model export clip-vit-b-32 --format triton --out /tmp/repo --backend python
    tritonserver --model-repository=/tmp/repo &
    python -m prodmatch.bench.triton --model clip-vit-b-32 --precision fp32 \
        --grpc-url triton://127.0.0.1:8001/clip-vit-b-32 --http-url triton+http://127.0.0.1:8000/clip-vit-b-32

The server must serve the same bundle (checked by fingerprint). Medians over --repeats runs per batch size, after
one warm-up run.
"""

from __future__ import annotations

import argparse
import json

from prodmatch.bench.models import BenchRow, bench_embedder
from prodmatch.config import Settings
from prodmatch.models.embedder import Embedder
from prodmatch.models.factory import create_embedder, ensure_bundle


def per_request_ms(embedder: Embedder, runtime: str, batch: int, repeats: int) -> dict[str, float]:
    """{tower}_ms per request and {tower}s_per_s, from the same timing loop as `prodmatch model bench`."""
    rows = bench_embedder(embedder, runtime, [batch], repeats)
    return {key: value for row in rows for key, value in _columns(row).items()}


def _columns(row: BenchRow) -> dict[str, float]:
    return {f"{row.tower}_ms": round(row.ms_per_item * row.batch, 2), f"{row.tower}s_per_s": round(row.items_per_s, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="clip-vit-b-32", help="registry name or bundle folder")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--grpc-url", required=True, help="triton://HOST:8001/NAME")
    parser.add_argument("--http-url", required=True, help="triton+http://HOST:8000/NAME")
    parser.add_argument("--batches", default="1,32")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    settings = Settings()
    bundle = ensure_bundle(args.model, settings, args.precision)
    local = create_embedder(bundle, settings, "onnx")
    remotes = {
        protocol: create_embedder(bundle, settings.model_copy(update={"model_url": url}), "triton")
        for protocol, url in (("grpc", args.grpc_url), ("http", args.http_url))
    }
    try:
        for batch in (int(b) for b in args.batches.split(",")):
            repeats = max(3, args.repeats // max(1, batch // 4))
            rows = {"local": per_request_ms(local, "local", batch, repeats)}
            rows |= {f"triton-{p}": per_request_ms(r, f"triton-{p}", batch, repeats) for p, r in remotes.items()}
            for runtime, row in rows.items():
                print(
                    json.dumps(
                        {
                            "model": bundle.manifest.name,
                            "runtime": runtime,
                            "batch": batch,
                            **row,
                            **(_overhead(row, rows["local"]) if runtime != "local" else {}),
                        }
                    )
                )
    finally:
        for remote in remotes.values():
            remote.close()


def _overhead(row: dict[str, float], local: dict[str, float]) -> dict[str, float]:
    return {f"{tower}_overhead_ms": round(row[f"{tower}_ms"] - local[f"{tower}_ms"], 2) for tower in ("image", "text")}


if __name__ == "__main__":
    main()

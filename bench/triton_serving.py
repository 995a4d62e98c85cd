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
import tempfile
from pathlib import Path

from tests.servers import TritonServer

from prodmatch.config import Settings
from prodmatch.models.bench import BenchRow, bench_embedder
from prodmatch.models.embedder import Embedder
from prodmatch.models.factory import create_embedder, ensure_bundle
from prodmatch.models.triton.embedder import TritonEmbedder
from prodmatch.models.triton.repository import RepositoryOptions, write_triton_repository


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
                rows = {"local": per_request_ms(local, "local", batch, repeats)}
                rows |= {f"triton-{p}": per_request_ms(r, f"triton-{p}", batch, repeats) for p, r in remotes.items()}
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

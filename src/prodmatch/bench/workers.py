"""Throughput of `prodmatch serve --workers N` for several N, one server at a time on 127.0.0.1, under the load
generator of `prodmatch.bench.vs_mvp` (distinct photo bytes per request, so no cache answers).

    python -m prodmatch.bench.workers --data-dir DATA --photos QUERY_PHOTOS --workers 1,2 --clients 8,32

Each worker is a process with its own model and index copy: the figure to read is the scaling from 1 to N, on a
machine with at least N otherwise idle cores.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from prodmatch.bench.mvp.load import Target, drive
from prodmatch.bench.mvp.servers import Server, cpu_model, load_average, prodmatch_command


def bench_workers(args: argparse.Namespace, photos: list[bytes]) -> list[dict[str, Any]]:
    """One row per (workers, clients): throughput and latency."""
    rows = []
    for workers in args.workers:
        command = [*prodmatch_command(args.prodmatch), "serve", "--data-dir", str(args.data_dir)]
        command += ["--port", str(args.port), "--workers", str(workers)]
        log = Path(args.log_dir) / f"serve-{workers}-workers.log"
        server = Server("prodmatch", command, args.port, "/ready", log)
        server.start(args.startup_timeout)
        try:
            target = Target("prodmatch", server.url, "/v1/match/image?top_k=5", "image")
            levels = drive(target, args.clients, args.requests, photos, args.warmup, args.time_limit)
        finally:
            server.stop()
        rows += [{"workers": workers, **level} for level in levels]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--photos", type=Path, required=True, help="a folder of query photos (JPEG)")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--clients", default="8")
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=16)
    parser.add_argument("--port", type=int, default=8313)
    parser.add_argument("--log-dir", type=Path, default=Path("."))
    parser.add_argument("--prodmatch", help="prodmatch CLI command [default: beside this Python, or on PATH]")
    parser.add_argument("--time-limit", type=float, default=600)
    parser.add_argument("--startup-timeout", type=float, default=600)
    args = parser.parse_args()
    args.workers = [int(n) for n in args.workers.split(",")]
    args.clients = [int(n) for n in args.clients.split(",")]
    photos = [path.read_bytes() for path in sorted(args.photos.glob("*.jpg"))]
    if not photos:
        raise SystemExit(f"no JPEG photos in {args.photos}")
    before = load_average()
    rows = bench_workers(args, photos)
    report = {"cpu": cpu_model(), "load_average_before": before, "load_average_after": load_average(), "rows": rows}
    json.dump(report, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()

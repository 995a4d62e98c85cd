"""prodmatch vs a seed-style MVP, side by side in one run: same machine, same catalog, same load.

    python -m prodmatch.bench.vs_mvp --products 10000 --clients 1,8,32 --requests 200 --work-dir /tmp/vs-mvp

1. makes (or reuses) a synthetic catalog of N products with `prodmatch.bench.synthetic_catalog`,
   plus a JSON-lines copy of it for the MVP;
2. exports (or reuses) the prodmatch bundle (`clip-vit-b-32-random`, int8 by default) and ingests the catalog
   into a prodmatch data dir (idempotent: a re-run re-embeds nothing);
3. starts the MVP (`prodmatch.bench.mvp.service`: fp32 PyTorch ViT-B/32, NumPy search over a 10,000 x 512 matrix of
   random unit vectors unless `--mvp-embed-catalog`), drives it, stops it; then the same for `prodmatch serve` —
   one server at a time, on 127.0.0.1, so they never share the cores;
4. drives each with the same load generator (`prodmatch.bench.mvp.load`): for each concurrency level a warm-up, then
   N requests, every request's bytes distinct (altered real photos, so no embedding cache answers);
5. prints throughput and p50/p95 latency per level with the ratio prodmatch/MVP, the server's CPU time per
   request, and the machine's CPU; writes everything to WORK_DIR/results/vs-mvp-TIMESTAMP.json.

The load generator runs on the same machine as the servers (as a load test on one box must), so every figure
includes its cost, equally for both. `--rounds R` repeats the pair R times, alternating which server goes first,
and reports the medians.

Run it on a quiet machine. Under CPU contention (load average above the core count) PyTorch's OpenMP threads
spin while their partner is descheduled: a 2-thread fp32 forward pass then costs ~10x its CPU time, and the ratio
measures that collapse rather than prodmatch. The command warns when the load average says the box was busy.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from prodmatch.bench.mvp.load import Target, drive, make_query_photos
from prodmatch.bench.mvp.servers import Server, cpu_model, load_average, prodmatch_command, run

# The sample photos beside a checkout (../shared/data): real photos, altered into query photos.
DEFAULT_PHOTOS = Path("../shared/data/myntra-dev/images")


def ensure_catalog(products: int, out: Path, logs: Path) -> Path:
    """CSV catalog of PRODUCTS synthetic products in OUT (see catalog_maker), reused when complete."""
    catalog = out / "catalog.csv"
    if catalog.exists():
        with open(catalog, newline="") as handle:
            rows = sum(1 for _ in csv.DictReader(handle))
        if rows == products and all((out / "images" / f"{n}.jpg").exists() for n in (0, products - 1)):
            return catalog
    maker = [sys.executable, "-m", "prodmatch.bench.synthetic_catalog"]
    run([*maker, "--products", str(products), "--out", str(out)], logs / "make_catalog.log")
    return catalog


def write_jsonl(catalog: Path) -> Path:
    """The MVP's JSON-lines copy of CATALOG: `product_id`, the metadata, and an absolute `image` path."""
    target = catalog.with_suffix(".jsonl")
    if target.exists() and target.stat().st_mtime >= catalog.stat().st_mtime:
        return target
    with open(catalog, newline="") as source, open(target, "w") as handle:
        for row in csv.DictReader(source):
            product = {"product_id": row.pop("id"), **row, "price": float(row["price"])}
            product["image"] = str((catalog.parent / row["image"]).resolve())
            handle.write(json.dumps(product) + "\n")
    return target


def check_answer(target: Target, photo: bytes, id_key: str) -> dict[str, Any]:
    """One request, to see the server answers 5 matches in the expected shape; returns the response."""
    response = httpx.post(target.url + target.path, files={target.field: ("q.jpg", photo, "image/jpeg")}, timeout=120)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    matches = body.get("matches", [])
    if len(matches) != 5 or any(id_key not in match or "score" not in match for match in matches):
        raise SystemExit(f"{target.name}: unexpected answer: {json.dumps(body)[:500]}")
    return body


def bench_one(
    server: Server, target: Target, id_key: str, args: argparse.Namespace, photos: list[bytes]
) -> dict[str, Any]:
    """Start SERVER, check one answer, drive every level, stop it."""
    startup_s = server.start(args.startup_timeout)
    try:
        check_answer(target, photos[0], id_key)
        levels = drive(target, args.clients, args.requests, photos, args.warmup, args.time_limit, server.cpu_seconds)
    finally:
        server.stop()
    return {"startup_s": round(startup_s, 1), "levels": levels}


def summarise(rounds: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """Per level, the median over rounds of each figure."""
    per_level = zip(*(result[name]["levels"] for result in rounds), strict=True)
    summary = []
    for reports in per_level:
        merged = {"clients": reports[0]["clients"]}
        for key in ("throughput_per_s", "p50_ms", "p95_ms", "p99_ms", "server_cpu_ms_per_request"):
            merged[key] = round(statistics.median(report[key] for report in reports), 2)
        merged["errors"] = sum(report["errors"] for report in reports)
        merged["cut_by_time_limit"] = any(report.get("cut_by_time_limit") for report in reports)
        merged["requests"] = sum(report["requests"] for report in reports)
        summary.append(merged)
    return summary


def table(mvp: list[dict[str, Any]], prodmatch: list[dict[str, Any]]) -> str:
    head = (
        "| clients | MVP req/s | MVP p50 ms | MVP p95 ms | prodmatch req/s | prodmatch p50 ms | prodmatch p95 ms "
        "| throughput ratio | p50 ratio | server CPU ms/req MVP / prodmatch |"
    )
    lines = [head, "|" + "---|" * 10]
    for a, b in zip(mvp, prodmatch, strict=True):
        lines.append(
            f"| {a['clients']} | {a['throughput_per_s']:.1f} | {a['p50_ms']:.0f} | {a['p95_ms']:.0f} "
            f"| {b['throughput_per_s']:.1f} | {b['p50_ms']:.0f} | {b['p95_ms']:.0f} "
            f"| **{b['throughput_per_s'] / a['throughput_per_s']:.2f}x** | {a['p50_ms'] / b['p50_ms']:.2f}x "
            f"| {a['server_cpu_ms_per_request']:.0f} / {b['server_cpu_ms_per_request']:.0f} |"
        )
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--clients", default="1,8,32", help="concurrency levels, comma-separated")
    parser.add_argument("--requests", type=int, default=200, help="measured requests per level")
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured requests per level first (>= clients)")
    parser.add_argument("--rounds", type=int, default=1, help="repeat the pair, alternating the order; medians")
    parser.add_argument("--work-dir", type=Path, default=Path("vs-mvp-work"), help="kept for reuse between runs")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object")
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS, help="real photos to make query photos from")
    parser.add_argument("--query-photos", type=int, default=64, help="altered photos in the query pool")
    parser.add_argument("--model", default="clip-vit-b-32-random", help="prodmatch registry model")
    parser.add_argument("--precision", default="int8", help="prodmatch bundle precision")
    parser.add_argument("--prodmatch", help="prodmatch CLI command [default: beside this Python, or on PATH]")
    parser.add_argument("--workers", type=int, default=1, help="prodmatch serve --workers")
    parser.add_argument("--mvp-threads", type=int, help="MVP torch threads [default: torch's own, one per core]")
    parser.add_argument("--mvp-port", type=int, default=8311)
    parser.add_argument("--prodmatch-port", type=int, default=8312)
    handlers = ["async", "sync"]
    parser.add_argument("--mvp-handler", choices=handlers, default="async", help="see prodmatch.bench.mvp.service")
    parser.add_argument(
        "--mvp-embed-catalog",
        action="store_true",
        help="MVP: embed every catalog photo at start-up (cached in WORK_DIR; minutes to hours of fp32 ViT-B/32 on "
        "a small CPU) instead of a matrix of random unit vectors (the default: same shape, same search cost)",
    )
    parser.add_argument(
        "--time-limit", type=float, default=1800, help="seconds per level at most (a level cut short is flagged)"
    )
    parser.add_argument("--startup-timeout", type=float, default=3600, help="seconds for a server to become ready")
    args = parser.parse_args()
    args.clients = [int(value) for value in args.clients.split(",")]
    return args


def prepare(args: argparse.Namespace, work: Path, cli: list[str]) -> tuple[Path, Path, list[bytes]]:
    """The catalog (CSV and the MVP's JSON lines), the ingested prodmatch data dir, and the query photos."""
    logs = work / "logs"
    if not args.photos.is_dir():
        raise SystemExit(f"no photos folder {args.photos}: pass --photos DIR (real photos to alter into queries)")
    catalog = ensure_catalog(args.products, work / f"catalog-{args.products}", logs)
    catalog_jsonl = write_jsonl(catalog)
    bundle = work / f"bundle-{args.model}-{args.precision}"
    if not (bundle / "manifest.json").exists():
        export = [*cli, "model", "export", args.model, "--precision", args.precision, "--out", str(bundle)]
        run(export, logs / "export.log")
    data_dir = work / f"prodmatch-data-{args.products}-{args.model}-{args.precision}"
    run([*cli, "ingest", str(catalog), "--model", str(bundle), "--data-dir", str(data_dir)], logs / "ingest.log")
    sources = sorted(p for p in args.photos.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    photos = [path.read_bytes() for path in make_query_photos(sources, work / "queries", args.query_photos)]
    return catalog_jsonl, data_dir, photos


def servers(
    args: argparse.Namespace, work: Path, cli: list[str], catalog_jsonl: Path, data_dir: Path, stamp: str
) -> dict[str, tuple[Server, Target, str]]:
    """The two servers (command, readiness probe, log) and where each takes photos."""
    logs = work / "logs"
    mvp_command = [sys.executable, "-m", "prodmatch.bench.mvp.service", "--catalog", str(catalog_jsonl)]
    mvp_command += ["--port", str(args.mvp_port), "--handler", args.mvp_handler]
    mvp_command += ["--log-file", str(logs / f"mvp-queries-{stamp}.jsonl")]
    if args.mvp_threads:
        mvp_command += ["--threads", str(args.mvp_threads)]
    if args.mvp_embed_catalog:
        mvp_command += ["--embeddings-cache", str(work / f"mvp-embeddings-{args.products}.npy")]
    else:
        mvp_command.append("--random-catalog-vectors")
    serve = [*cli, "serve", "--data-dir", str(data_dir), "--host", "127.0.0.1", "--port", str(args.prodmatch_port)]
    if args.workers > 1:
        serve += ["--workers", str(args.workers)]
    mvp_url, prodmatch_url = f"http://127.0.0.1:{args.mvp_port}", f"http://127.0.0.1:{args.prodmatch_port}"
    return {
        "mvp": (
            Server("mvp", mvp_command, args.mvp_port, "/health", logs / "mvp-server.log"),
            Target("mvp", mvp_url, "/match-image?top_k=5", "file"),
            "product_id",
        ),
        "prodmatch": (
            Server("prodmatch", serve, args.prodmatch_port, "/ready", logs / "prodmatch-server.log"),
            Target("prodmatch", prodmatch_url, "/v1/match/image?top_k=5", "image"),
            "id",
        ),
    }


def ratios(mvp: list[dict[str, Any]], prodmatch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "clients": a["clients"],
            "throughput": round(b["throughput_per_s"] / a["throughput_per_s"], 2),
            "p50": round(a["p50_ms"] / b["p50_ms"], 2),
            "p95": round(a["p95_ms"] / b["p95_ms"], 2),
        }
        for a, b in zip(mvp, prodmatch, strict=True)
    ]


def print_report(report: dict[str, Any], args: argparse.Namespace, out: Path) -> None:
    mvp, prodmatch = report["mvp"]["levels"], report["prodmatch"]["levels"]
    before, after = report["load_average_before"], report["load_average_after"]
    print(f"\nCPU: {report['cpu']}; load average before/after: {before} / {after}")
    print(
        f"{args.products} products, {args.requests} requests per level after {args.warmup} warm-up, "
        f"{args.rounds} round(s); MVP: fp32 PyTorch, {args.mvp_handler} route; "
        f"prodmatch: {args.model} {args.precision}, {args.workers} worker(s)\n"
    )
    print(table(mvp, prodmatch))
    if any(level["errors"] for level in mvp + prodmatch):
        print("\nWARNING: some requests failed; see the JSON for counts")
    for name, levels in (("MVP", mvp), ("prodmatch", prodmatch)):
        for level in levels:
            if level["cut_by_time_limit"]:
                print(f"NOTE: {name} at {level['clients']} clients hit --time-limit: {level['requests']} measured")
    cores = os.cpu_count() or 1
    if max(before[0], after[0]) > cores:
        print(
            f"WARNING: load average above {cores} cores: other processes competed for the CPU; the MVP's torch "
            "threads degrade far more than prodmatch under contention, so these ratios overstate prodmatch"
        )
    print(f"\nresults: {out}")


def main() -> None:
    args = parse_args()
    started = time.time()
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(started))
    work = args.work_dir.resolve()
    (work / "logs").mkdir(parents=True, exist_ok=True)
    (work / "results").mkdir(exist_ok=True)
    cli = prodmatch_command(args.prodmatch)
    catalog_jsonl, data_dir, photos = prepare(args, work, cli)
    chosen = servers(args, work, cli, catalog_jsonl, data_dir, stamp)
    load_before = load_average()
    rounds = []
    for number in range(args.rounds):
        order = ["mvp", "prodmatch"] if number % 2 == 0 else ["prodmatch", "mvp"]
        result: dict[str, Any] = {"order": order}
        for name in order:
            print(f"round {number + 1}/{args.rounds}: {name}", file=sys.stderr, flush=True)
            result[name] = bench_one(*chosen[name], args, photos)
        rounds.append(result)
    mvp, prodmatch = summarise(rounds, "mvp"), summarise(rounds, "prodmatch")
    report: dict[str, Any] = {
        "cpu": cpu_model(),
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
        "seconds": round(time.time() - started, 1),
        "products": args.products,
        "requests_per_level": args.requests,
        "warmup_per_level": args.warmup,
        "rounds": args.rounds,
        "mvp": {
            "handler": args.mvp_handler,
            "threads": args.mvp_threads,
            "random_catalog_vectors": not args.mvp_embed_catalog,
            "levels": mvp,
        },
        "prodmatch": {"model": args.model, "precision": args.precision, "workers": args.workers, "levels": prodmatch},
        "ratios": ratios(mvp, prodmatch),
        "raw_rounds": rounds,
    }
    out = work / "results" / f"vs-mvp-{stamp}.json"
    out.write_text(json.dumps(report, indent=2))
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print_report(report, args, out)


if __name__ == "__main__":
    main()

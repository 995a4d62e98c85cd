"""Soak: many clients mixing matches, upserts and deletes against a real `prodmatch serve` on 127.0.0.1 for a
bounded time while a `prodmatch ingest` of a catalog file runs beside it; afterwards every product, vector and
query-log row is accounted for.

    python -m prodmatch.bench.soak CATALOG.csv --seconds 180 --clients 8 [--images DIR] [--json]

The catalog's stores come from the environment (PRODMATCH_METADATA_URL / PRODMATCH_VECTORS_URL /
PRODMATCH_DATA_DIR) and must take two writing processes at once: PostgreSQL + pgvector (or MongoDB, Qdrant).
Embedded FAISS files have one writer, the server, so a concurrent ingest process is refused here. The server runs
without rate limits (the clients all come from 127.0.0.1); it is stopped with SIGINT so it flushes its query log.

Accounted for at the end: each client's products that it upserted and did not delete exist, the ones it deleted
do not; every catalog row the ingest reported is stored; each product has its vectors and the indexes hold
exactly the vector table's ids (prodmatch doctor's checks); each answered match's query id is in the query log.
Reported: requests by kind and status, 5xx count, server RSS after warm-up and at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from prodmatch.application.doctor import diagnose
from prodmatch.catalog.readers import read_catalog
from prodmatch.composition import EmbedderFactory, open_catalog
from prodmatch.config import Settings
from prodmatch.models.factory import create_embedder

PRODMATCH = [sys.executable, "-m", "prodmatch"]
SAMPLE_S = 10.0
TEXTS = ["yellow t-shirt", "blue denim shirt", "checked shirt", "printed tshirt", "kurta", "track pants", "polo"]


@dataclass
class SoakReport:
    seconds: float
    clients: int
    requests: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    by_status: dict[str, int] = field(default_factory=dict)
    server_errors: int = 0
    transport_errors: int = 0
    rss_start_mb: float = 0.0
    rss_end_mb: float = 0.0
    rss_samples_mb: list[float] = field(default_factory=list)  # every SAMPLE_S during the run: growth or plateau
    ingest: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # accounting failures: empty when all is accounted for


@dataclass
class ClientLog:
    """What one client did: for the final accounting."""

    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    transport_errors: int = 0
    live: set[str] = field(default_factory=set)  # its products that should exist
    deleted: set[str] = field(default_factory=set)  # its products that should not
    query_ids: list[str] = field(default_factory=list)


def client_loop(base: str, number: int, photos: list[bytes], until: float, seed: int) -> ClientLog:
    """One client: 70% matches (text or photo), 15% upserts, 15% deletes of its own products, until UNTIL."""
    chance, log, made = random.Random(seed * 1000 + number), ClientLog(), 0
    with httpx.Client(base_url=base, timeout=60) as http:
        while time.monotonic() < until:
            roll = chance.random()
            try:
                if roll < 0.7:
                    _match(http, chance, photos, log)
                elif roll < 0.85 or not log.live:
                    made += 1
                    _upsert(http, chance, photos, f"soak-{number}-{made}", log)
                else:
                    _delete(http, chance.choice(sorted(log.live)), log)
            except httpx.TransportError:
                log.transport_errors += 1
    return log


def _match(http: httpx.Client, chance: random.Random, photos: list[bytes], log: ClientLog) -> None:
    if chance.random() < 0.5:
        response = http.post("/v1/match/text", json={"text": chance.choice(TEXTS), "top_k": 5})
        kind = "match_text"
    else:
        response = http.post("/v1/match/image", files={"image": ("q.jpg", chance.choice(photos), "image/jpeg")})
        kind = "match_image"
    log.statuses[(kind, response.status_code)] += 1
    if response.status_code == 200:
        log.query_ids.append(response.json()["query_id"])


def _upsert(http: httpx.Client, chance: random.Random, photos: list[bytes], product_id: str, log: ClientLog) -> None:
    fields = json.dumps({"name": f"soak product {product_id}", "colour": chance.choice(["red", "blue"])})
    files = {"image": ("p.jpg", chance.choice(photos), "image/jpeg")}
    response = http.put(f"/v1/products/{product_id}", data={"fields": fields}, files=files)
    log.statuses[("upsert", response.status_code)] += 1
    if response.status_code == 200:
        log.live.add(product_id)
        log.deleted.discard(product_id)


def _delete(http: httpx.Client, product_id: str, log: ClientLog) -> None:
    response = http.delete(f"/v1/products/{product_id}")
    log.statuses[("delete", response.status_code)] += 1
    if response.status_code == 204:
        log.live.discard(product_id)
        log.deleted.add(product_id)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _sample_rss(pid: int, samples: list[float], stop: threading.Event) -> None:
    while not stop.wait(SAMPLE_S):
        samples.append(round(rss_mb(pid), 1))


def run_clients(base: str, clients: int, photos: list[bytes], seconds: float, seed: int) -> list[ClientLog]:
    until = time.monotonic() + seconds
    logs: list[ClientLog] = [ClientLog() for _ in range(clients)]

    def work(n: int) -> None:
        logs[n] = client_loop(base, n, photos, until, seed)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return logs


def account(
    settings: Settings, logs: list[ClientLog], ingested_ids: set[str], embedders: EmbedderFactory = create_embedder
) -> list[str]:
    """What is not as the clients and the ingest left it (empty: everything accounted for)."""
    checks = diagnose(settings, embedders)
    problems = [f"{c.name}: {c.detail}" for c in checks if not c.ok and c.name != "disk space"]
    live = set().union(*(log.live for log in logs))
    deleted = set().union(*(log.deleted for log in logs))
    query_ids = [qid for log in logs for qid in log.query_ids]
    with open_catalog(settings, embedders=embedders) as catalog:
        stored = catalog.store.get(sorted(live | deleted | ingested_ids))
        problems += [f"upserted {pid} is missing" for pid in sorted(live - set(stored))]
        problems += [f"deleted {pid} still exists" for pid in sorted(deleted & set(stored))]
        problems += [f"ingested {pid} is missing" for pid in sorted(ingested_ids - set(stored))]
        for space in catalog.record.spaces:
            owners, _vectors = catalog.store.product_vectors(sorted(stored), space)
            problems += [f"{pid} has no {space} vector" for pid in sorted(set(stored) - set(owners))]
        missing_log = [qid for qid in query_ids if catalog.store.find_query(qid) is None]
    if missing_log:
        problems.append(f"{len(missing_log)} of {len(query_ids)} answered queries missing from the query log")
    return problems


def summarise(report: SoakReport, logs: list[ClientLog]) -> None:
    statuses: Counter[tuple[str, int]] = sum((log.statuses for log in logs), Counter())
    report.requests = sum(statuses.values())
    kinds: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    for (kind, status), n in statuses.items():
        kinds[kind] += n
        codes[str(status)] += n
    report.by_kind, report.by_status = dict(kinds), dict(codes)
    report.server_errors = sum(n for (_kind, status), n in statuses.items() if status >= 500)
    report.transport_errors = sum(log.transport_errors for log in logs)


def soak(
    catalog_file: Path,
    photos: list[bytes],
    seconds: float,
    clients: int,
    prodmatch: list[str],
    embedders: EmbedderFactory = create_embedder,
) -> SoakReport:
    """The whole run: server, warm-up, clients + ingest, stop, accounting (EMBEDDERS: the model the accounting
    opens the catalog with; the server and the ingest are PRODMATCH's own processes)."""
    settings = Settings()
    if settings.location().vectors_url.startswith("faiss"):
        raise SystemExit("soak needs stores that take two writers (PostgreSQL + pgvector, MongoDB, Qdrant)")
    env = {**os.environ, "PRODMATCH_SERVE__RATE_PER_S": "0"}
    port = _free_port()
    server = subprocess.Popen([*prodmatch, "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL)
    base, report = f"http://127.0.0.1:{port}", SoakReport(seconds, clients)
    try:
        _wait_ready(base, server)
        run_clients(base, 2, photos, 2.0, seed=0)  # warm-up: model, caches, first allocations
        report.rss_start_mb = rss_mb(server.pid)
        ingest = subprocess.Popen(
            [*prodmatch, "ingest", str(catalog_file), "--json"], env=env, stdout=subprocess.PIPE, text=True
        )
        stop = threading.Event()
        sampler = threading.Thread(target=_sample_rss, args=(server.pid, report.rss_samples_mb, stop), daemon=True)
        sampler.start()
        logs = run_clients(base, clients, photos, seconds, seed=1)
        stop.set()
        out, _ = ingest.communicate(timeout=600)
        report.ingest = json.loads(out) if ingest.returncode == 0 else {"exit_code": ingest.returncode}
        report.rss_end_mb = rss_mb(server.pid)
    finally:
        server.send_signal(signal.SIGINT)  # graceful: the query log is flushed
        server.wait(timeout=120)
    summarise(report, logs)
    ingested = _catalog_ids(catalog_file, report.ingest)
    report.problems = account(settings, logs, ingested, embedders)
    return report


def _catalog_ids(catalog_file: Path, ingest_report: dict[str, Any]) -> set[str]:
    """The ids the ingest stored: the catalog's, less the rows it rejected (read the way ingest reads them)."""
    column = ingest_report.get("mapping", {}).get("id", "id")
    rejected = {r.get("id") for r in ingest_report.get("rejected", [])}
    return {str(row.data[column]).strip() for row in read_catalog(catalog_file) if row.error is None} - rejected


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(base: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if httpx.get(f"{base}/ready", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"prodmatch serve did not become ready (exit code {server.poll()})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("catalog", type=Path, help="catalog file the concurrent ingest reads")
    parser.add_argument("--images", type=Path, help="folder of JPEG photos for queries and upserts [catalog/images]")
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--prodmatch", default=shlex.join(PRODMATCH), help="command that runs prodmatch")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    folder = args.images or args.catalog.parent / "images"
    photos = [path.read_bytes() for path in sorted(folder.glob("*.jpg"))[:50]]
    report = soak(args.catalog, photos, args.seconds, args.clients, shlex.split(args.prodmatch))
    print(json.dumps(asdict(report), indent=None if args.json else 2))
    sys.exit(1 if report.problems or report.server_errors else 0)


if __name__ == "__main__":
    main()

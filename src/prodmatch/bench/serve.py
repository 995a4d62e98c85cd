"""`prodmatch bench serve`: N concurrent clients against a running server; latency percentiles and throughput.

Every image request carries a different byte string (random bytes after the JPEG end marker, which decoders
ignore), so the server's embedding cache never answers for the model. Traffic goes to the URL given, which
must be a server of yours (loopback by default); the run is bounded by a request count and a time limit.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

TEXTS = [
    "boys yellow t-shirt",
    "blue denim shirt",
    "red checked shirt for boys",
    "green printed tshirt",
    "navy blue kurta",
    "white casual shirt",
    "black track pants",
    "striped polo t-shirt",
]


@dataclass
class LoadReport:
    mode: str
    clients: int
    requests: int
    errors: int
    seconds: float
    throughput_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))]


async def _client(
    http: httpx.AsyncClient,
    mode: str,
    photos: list[bytes],
    budget: list[int],
    deadline: float,
    latencies: list[float],
    errors: list[int],
) -> None:
    while budget[0] > 0 and time.monotonic() < deadline:
        budget[0] -= 1
        number = budget[0]
        started = time.perf_counter()
        if mode == "image":
            data = photos[number % len(photos)] + os.urandom(16)
            response = await http.post("/v1/match/image", files={"image": ("q.jpg", data, "image/jpeg")})
        else:
            text = f"{TEXTS[number % len(TEXTS)]} {number}"
            response = await http.post("/v1/match/text", json={"text": text})
        if response.status_code == 200:
            latencies.append((time.perf_counter() - started) * 1000)
        else:
            errors.append(response.status_code)


async def run_load(
    url: str,
    mode: str,
    clients: int,
    requests: int,
    photos: list[bytes],
    time_limit_s: float = 300,
) -> LoadReport:
    """Drive URL with CLIENTS concurrent clients until REQUESTS are done (or the time limit passes)."""
    latencies: list[float] = []
    errors: list[int] = []
    budget = [requests]
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        started = time.perf_counter()
        deadline = time.monotonic() + time_limit_s
        await asyncio.gather(
            *(_client(http, mode, photos, budget, deadline, latencies, errors) for _ in range(clients))
        )
        seconds = time.perf_counter() - started
    if not latencies:
        raise RuntimeError(f"no request succeeded (statuses: {sorted(set(errors))})")
    return LoadReport(
        mode,
        clients,
        len(latencies),
        len(errors),
        round(seconds, 2),
        round(len(latencies) / seconds, 1),
        round(statistics.median(latencies), 2),
        round(percentile(latencies, 0.95), 2),
        round(percentile(latencies, 0.99), 2),
    )


def bench_serve(
    url: str, modes: list[str], clients: list[int], requests: int, photo_paths: list[Path], warmup: int = 20
) -> list[dict[str, Any]]:
    photos = [path.read_bytes() for path in photo_paths]
    if "image" in modes and not photos:
        raise ValueError("image mode needs photos (--photos DIR)")
    reports = []
    for mode in modes:
        asyncio.run(run_load(url, mode, 4, warmup, photos))  # warm the server: first requests allocate
        for count in clients:
            reports.append(asdict(asyncio.run(run_load(url, mode, count, requests, photos))))
    return reports

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
from collections.abc import Callable
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


# What a client sends for request number N: the route and httpx's post() keyword arguments.
RequestMaker = Callable[[int], tuple[str, dict[str, Any]]]


@dataclass
class LoadReport:
    clients: int
    requests: int
    errors: int
    seconds: float
    throughput_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (SHARE in 0..1) of VALUES."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))]


def photo_requests(photos: list[bytes], path: str = "/v1/match/image", field: str = "image") -> RequestMaker:
    """Multipart photo uploads to PATH: one of PHOTOS plus 16 random bytes after the JPEG end marker (decoders
    ignore them), so no cache can answer."""
    return lambda number: (
        path,
        {"files": {field: ("q.jpg", photos[number % len(photos)] + os.urandom(16), "image/jpeg")}},
    )


def text_requests(path: str = "/v1/match/text") -> RequestMaker:
    """JSON text queries, each made distinct by its request number."""
    return lambda number: (path, {"json": {"text": f"{TEXTS[number % len(TEXTS)]} {number}"}})


async def _client(
    http: httpx.AsyncClient,
    make: RequestMaker,
    budget: list[int],
    deadline: float,
    latencies: list[float],
    errors: list[str],
) -> None:
    while budget[0] > 0 and time.monotonic() < deadline:
        budget[0] -= 1
        path, arguments = make(budget[0])
        started = time.perf_counter()
        try:
            response = await http.post(path, **arguments)
        except httpx.HTTPError as error:
            errors.append(type(error).__name__)
            continue
        if response.status_code == 200:
            latencies.append((time.perf_counter() - started) * 1000)
        else:
            errors.append(str(response.status_code))


async def run_load(
    url: str, make: RequestMaker, clients: int, requests: int, time_limit_s: float = 300, timeout_s: float = 60
) -> LoadReport:
    """Drive URL with CLIENTS concurrent clients sending MAKE's requests until REQUESTS are done (or the time
    limit passes)."""
    latencies: list[float] = []
    errors: list[str] = []
    budget = [requests]
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=timeout_s, limits=limits) as http:
        started = time.perf_counter()
        deadline = time.monotonic() + time_limit_s
        await asyncio.gather(*(_client(http, make, budget, deadline, latencies, errors) for _ in range(clients)))
        seconds = time.perf_counter() - started
    if not latencies:
        raise RuntimeError(f"{url}: no request succeeded (errors: {sorted(set(errors))})")
    return LoadReport(
        clients,
        len(latencies),
        len(errors),
        round(seconds, 2),
        round(len(latencies) / seconds, 2),
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
        make = photo_requests(photos) if mode == "image" else text_requests()
        asyncio.run(run_load(url, make, 4, warmup))  # warm the server: first requests allocate
        for count in clients:
            reports.append({"mode": mode, **asdict(asyncio.run(run_load(url, make, count, requests)))})
    return reports

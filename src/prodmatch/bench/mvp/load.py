"""The load generator for `python -m prodmatch.bench.vs_mvp`: query photos, and N concurrent httpx clients against
one server.

Same approach as `prodmatch bench serve` (src/prodmatch/bench/serve.py), generalised to any photo route and form
field: every request's bytes differ (one of a pool of altered photos, plus 16 random bytes after the JPEG end
marker, which decoders ignore), so no server can answer from a cache; the run is bounded by a request count and a
time limit. Traffic goes only to the loopback URL given.
"""

from __future__ import annotations

import asyncio
import io
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image, ImageEnhance


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


@dataclass(frozen=True)
class Target:
    """Where a server takes photos: its base URL, the route, and the multipart field name."""

    name: str
    url: str
    path: str
    field: str


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (SHARE in 0..1) of VALUES."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))]


def alter_photo(source: Path, rng: np.random.Generator, max_side: int = 800) -> bytes:
    """A phone-upload-like JPEG of SOURCE: at most MAX_SIDE px, slightly cropped, brightened or darkened, and
    re-encoded at a random quality."""
    image = Image.open(source).convert("RGB")
    image.thumbnail((max_side, max_side), Image.Resampling.BICUBIC)
    width, height = image.size
    dx, dy = (int(rng.integers(0, max(1, side // 30))) for side in (width, height))
    image = image.crop((dx, dy, width - int(rng.integers(0, max(1, width // 30))), height - dy))
    image = ImageEnhance.Brightness(image).enhance(float(rng.uniform(0.92, 1.08)))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=int(rng.integers(80, 93)))
    return buffer.getvalue()


def make_query_photos(sources: list[Path], out: Path, count: int = 64, seed: int = 0) -> list[Path]:
    """COUNT altered copies of photos drawn from SOURCES, written to OUT (reused when already there)."""
    out.mkdir(parents=True, exist_ok=True)
    existing = sorted(out.glob("q*.jpg"))
    if len(existing) >= count:
        return existing[:count]
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(sources), size=count, replace=len(sources) < count)
    paths = []
    for number, index in enumerate(chosen):
        path = out / f"q{number:04d}.jpg"
        path.write_bytes(alter_photo(sources[int(index)], rng))
        paths.append(path)
    return paths


async def _client(
    http: httpx.AsyncClient,
    target: Target,
    photos: list[bytes],
    budget: list[int],
    deadline: float,
    latencies: list[float],
    errors: list[str],
) -> None:
    while budget[0] > 0 and time.monotonic() < deadline:
        budget[0] -= 1
        number = budget[0]
        data = photos[number % len(photos)] + os.urandom(16)  # distinct bytes: no cache can answer
        started = time.perf_counter()
        try:
            response = await http.post(target.path, files={target.field: ("q.jpg", data, "image/jpeg")})
        except httpx.HTTPError as error:
            errors.append(type(error).__name__)
            continue
        if response.status_code == 200:
            latencies.append((time.perf_counter() - started) * 1000)
        else:
            errors.append(str(response.status_code))


async def run_load(
    target: Target, clients: int, requests: int, photos: list[bytes], time_limit_s: float = 600
) -> LoadReport:
    """Drive TARGET with CLIENTS concurrent clients until REQUESTS are done (or the time limit passes)."""
    latencies: list[float] = []
    errors: list[str] = []
    budget = [requests]
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=target.url, timeout=600, limits=limits) as http:
        started = time.perf_counter()
        deadline = time.monotonic() + time_limit_s
        await asyncio.gather(
            *(_client(http, target, photos, budget, deadline, latencies, errors) for _ in range(clients))
        )
        seconds = time.perf_counter() - started
    if not latencies:
        raise RuntimeError(f"{target.name}: no request succeeded (errors: {sorted(set(errors))})")
    return LoadReport(
        clients,
        len(latencies),
        len(errors),
        round(seconds, 2),
        round(len(latencies) / seconds, 2),
        round(statistics.median(latencies), 1),
        round(percentile(latencies, 0.95), 1),
        round(percentile(latencies, 0.99), 1),
    )


def drive(
    target: Target,
    levels: list[int],
    requests: int,
    photos: list[bytes],
    warmup: int = 20,
    time_limit_s: float = 600,
    cpu_seconds: Callable[[], float] | None = None,
) -> list[dict[str, Any]]:
    """For each concurrency level: WARMUP requests at that level (not measured), then REQUESTS measured ones.
    CPU_SECONDS (the server process's CPU time so far) adds the server's CPU milliseconds per measured request."""
    reports = []
    for clients in levels:
        asyncio.run(run_load(target, clients, max(warmup, clients), photos, time_limit_s))
        cpu_before = cpu_seconds() if cpu_seconds else 0.0
        report = asdict(asyncio.run(run_load(target, clients, requests, photos, time_limit_s)))
        report["cut_by_time_limit"] = report["requests"] + report["errors"] < requests
        if cpu_seconds:
            used = cpu_seconds() - cpu_before
            report["server_cpu_ms_per_request"] = round(1000 * used / (report["requests"] + report["errors"]), 1)
        reports.append(report)
    return reports

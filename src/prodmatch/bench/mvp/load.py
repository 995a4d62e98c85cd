"""The load generator for `python -m prodmatch.bench.vs_mvp`: query photos, and N concurrent httpx clients against
one server.

The clients are `prodmatch bench serve`'s (prodmatch.bench.serve.run_load), pointed at any photo route and form
field: every request's bytes differ (one of a pool of altered photos, plus 16 random bytes after the JPEG end
marker, which decoders ignore), so no server can answer from a cache; the run is bounded by a request count and a
time limit. Traffic goes only to the loopback URL given.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageEnhance

from prodmatch.bench.serve import photo_requests, run_load

# a seed-style MVP can take many seconds per request on a loaded machine: no client gives up on it
LONG_WAIT_S = 600


@dataclass(frozen=True)
class Target:
    """Where a server takes photos: its base URL, the route, and the multipart field name."""

    name: str
    url: str
    path: str
    field: str


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
    make = photo_requests(photos, target.path, target.field)
    reports = []
    for clients in levels:
        asyncio.run(run_load(target.url, make, clients, max(warmup, clients), time_limit_s, LONG_WAIT_S))
        cpu_before = cpu_seconds() if cpu_seconds else 0.0
        report = asdict(asyncio.run(run_load(target.url, make, clients, requests, time_limit_s, LONG_WAIT_S)))
        report["cut_by_time_limit"] = report["requests"] + report["errors"] < requests
        if cpu_seconds:
            used = cpu_seconds() - cpu_before
            report["server_cpu_ms_per_request"] = round(1000 * used / (report["requests"] + report["errors"]), 1)
        reports.append(report)
    return reports

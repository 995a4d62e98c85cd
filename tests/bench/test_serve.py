"""`prodmatch bench serve`'s load generator (also the vs-MVP benchmark's) against the real app on 127.0.0.1:
every request counted, each photo request distinct bytes (no cache can answer), failures reported, not hidden."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from prodmatch.bench.serve import bench_serve, run_load, text_requests
from prodmatch.composition import open_catalog
from prodmatch.config import Settings
from tests.api.live import live_app
from tests.fakes import FakeEmbedders


def test_every_request_is_answered_counted_and_distinct(
    fake_myntra: Settings, fake_embedders: FakeEmbedders, myntra: Path
) -> None:
    photos = sorted((myntra / "images").glob("*.jpg"))[:3]
    with live_app(fake_myntra, fake_embedders) as url:
        reports = bench_serve(url, ["image", "text"], [1, 3], requests=9, photo_paths=photos, warmup=4)
    assert [(r["mode"], r["clients"], r["requests"], r["errors"]) for r in reports] == [
        ("image", 1, 9, 0),
        ("image", 3, 9, 0),
        ("text", 1, 9, 0),
        ("text", 3, 9, 0),
    ]
    assert all(0 < r["p50_ms"] <= r["p95_ms"] <= r["p99_ms"] and r["throughput_per_s"] > 0 for r in reports)
    with open_catalog(fake_myntra, embedders=fake_embedders) as catalog:
        logged = catalog.store.recent_queries(100)
    images = [entry for entry in logged if entry.modality == "image"]
    assert len(images) == 4 + 9 + 9 and len({entry.query_hash for entry in images}) == len(images)  # 3 photos


def test_a_server_that_answers_nothing_right_is_an_error_not_a_report(
    fake_myntra: Settings, fake_embedders: FakeEmbedders
) -> None:
    with live_app(fake_myntra, fake_embedders) as url, pytest.raises(RuntimeError, match=r"errors: \['404'\]"):
        asyncio.run(run_load(url, text_requests(path="/v1/nowhere"), clients=2, requests=4))

"""The vs-MVP benchmark's parts: the MVP service itself, the catalog copy it reads, and the report arithmetic."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any

import pytest

from prodmatch.bench.mvp.load import Target, drive
from prodmatch.bench.serve import percentile
from prodmatch.bench.vs_mvp import ratios, summarise, table, write_jsonl
from prodmatch.config import Settings
from tests.api.live import live_app
from tests.fakes import FakeEmbedders


def level(clients: int, throughput: float, p50: float) -> dict[str, Any]:
    return {
        "clients": clients,
        "requests": 10,
        "errors": 0,
        "throughput_per_s": throughput,
        "p50_ms": p50,
        "p95_ms": 2 * p50,
        "p99_ms": 3 * p50,
        "server_cpu_ms_per_request": p50,
        "cut_by_time_limit": False,
    }


def test_rounds_are_summarised_by_their_medians_and_ratios_compare_like_with_like() -> None:
    rounds = [
        {"mvp": {"levels": [level(1, 5.0, 200)]}, "prodmatch": {"levels": [level(1, 20.0, 50)]}},
        {"mvp": {"levels": [level(1, 4.0, 250)]}, "prodmatch": {"levels": [level(1, 30.0, 40)]}},
        {"mvp": {"levels": [level(1, 6.0, 150)]}, "prodmatch": {"levels": [level(1, 25.0, 45)]}},
    ]
    mvp, prodmatch = summarise(rounds, "mvp"), summarise(rounds, "prodmatch")
    assert mvp[0]["throughput_per_s"] == 5.0 and prodmatch[0]["p50_ms"] == 45 and mvp[0]["requests"] == 30
    assert ratios(mvp, prodmatch) == [{"clients": 1, "throughput": 5.0, "p50": 4.44, "p95": 4.44}]
    assert "**5.00x**" in table(mvp, prodmatch)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 51 and percentile(values, 0.95) == 95 and percentile(values, 1.0) == 100


def test_the_mvp_catalog_is_a_json_lines_copy_with_absolute_image_paths(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.csv"
    with open(catalog, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerows([["id", "name", "price", "image"], ["p1", "Red shirt", "9.5", "images/p1.jpg"]])
    lines = [json.loads(line) for line in write_jsonl(catalog).read_text().splitlines()]
    assert lines == [
        {"product_id": "p1", "name": "Red shirt", "price": 9.5, "image": str(tmp_path / "images" / "p1.jpg")}
    ]


@pytest.mark.slow
def test_the_mvp_answers_a_photo_with_its_top_matches(tmp_path: Path, myntra: Path) -> None:
    from fastapi.testclient import TestClient

    from prodmatch.bench.mvp.service import create_app

    photos = sorted((myntra / "images").glob("*.jpg"))[:3]
    catalog = tmp_path / "catalog.jsonl"
    catalog.write_text("".join(json.dumps({"product_id": p.stem, "image": str(p)}) + "\n" for p in photos))
    with TestClient(create_app(catalog, log_file=tmp_path / "log.jsonl")) as client:
        files = {"file": ("q.jpg", photos[1].read_bytes(), "image/jpeg")}
        body = client.post("/match-image?top_k=2", files=files).json()
        assert client.post("/match-image", files={"file": ("x.jpg", b"not a photo", "image/jpeg")}).status_code == 400
    assert body["matches"][0]["product_id"] == photos[1].stem and body["matches"][0]["score"] == pytest.approx(1.0)
    assert len(body["matches"]) == 2 and len((tmp_path / "log.jsonl").read_text().splitlines()) == 1


def test_the_load_drives_a_photo_route_and_charges_the_server_cpu_per_request(
    fake_myntra: Settings, fake_embedders: FakeEmbedders, myntra: Path
) -> None:
    photos = [path.read_bytes() for path in sorted((myntra / "images").glob("*.jpg"))[:2]]
    with live_app(fake_myntra, fake_embedders) as url:  # in this process: its CPU time is the server's
        target = Target("prodmatch", url, "/v1/match/image", "image")
        (report,) = drive(target, [2], requests=6, photos=photos, warmup=2, cpu_seconds=time.process_time)
    assert (report["clients"], report["requests"], report["errors"], report["cut_by_time_limit"]) == (2, 6, 0, False)
    assert report["server_cpu_ms_per_request"] > 0

"""The soak (prodmatch.bench.soak), short: a real `prodmatch serve` and a concurrent `prodmatch ingest` (both
separate processes, the fake model: tests/fake_cli.py) on PostgreSQL + pgvector, clients mixing matches, upserts
and deletes on 127.0.0.1; no 5xx, and every product, vector and query-log row accounted for."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest

from prodmatch.bench.soak import soak
from prodmatch.config import Settings
from prodmatch.models.bundle import Bundle
from tests.conftest import StoreUrl
from tests.fakes import FakeEmbedders
from tests.samples import ingest_myntra

SECONDS = 30
BASE_ROWS = 20  # the catalog the server starts with
INGESTED_ROWS = 40  # the next rows, ingested while the clients run


def write_rows(myntra: Path, target: Path, first: int, count: int) -> Path:
    with (myntra / "catalog.csv").open(newline="") as source:
        rows = list(csv.DictReader(source))[first : first + count]
    for row in rows:
        row["Image"] = str(myntra / "images" / row["Image"])
    with target.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return target


@pytest.mark.slow  # separate processes for minutes: CI runs it, the fast tier does not
def test_short_soak_has_no_5xx_and_accounts_for_every_row(
    settings: Settings,
    store_url: StoreUrl,
    myntra: Path,
    fake_bundle: Bundle,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    url = store_url("postgresql")
    settings = settings.model_copy(
        update={"metadata_url": url, "vectors_url": url.replace("postgresql", "pgvector", 1)}
    )
    ingest_myntra(settings, myntra, rows=BASE_ROWS, model=str(fake_bundle.folder), embedders=FakeEmbedders()).close()
    for name, value in {
        "PRODMATCH_METADATA_URL": settings.metadata_url,
        "PRODMATCH_VECTORS_URL": settings.vectors_url,
        "PRODMATCH_DATA_DIR": str(settings.data_dir),
        "PRODMATCH_MODELS_DIR": str(settings.models_dir),
        "PYTHONPATH": ":".join(sys.path),
    }.items():
        monkeypatch.setenv(name, str(value))
    catalog = write_rows(myntra, tmp_path / "more.csv", BASE_ROWS, INGESTED_ROWS)
    photos = [p.read_bytes() for p in sorted((myntra / "images").glob("*.jpg"))[:20]]

    report = soak(catalog, photos, SECONDS, 4, [sys.executable, "-m", "tests.fake_cli"], FakeEmbedders())

    print(report)
    assert report.server_errors == 0 and report.transport_errors == 0, report.by_status
    assert report.problems == [], report.problems
    assert report.ingest["added"] == INGESTED_ROWS and report.ingest["rejected"] == []
    assert {"match_text", "match_image", "upsert", "delete"} <= set(report.by_kind)
    assert report.requests > 50 and report.rss_end_mb < 4 * report.rss_start_mb

"""Catalog feeds with image URLs: `ingest` downloads them into the data dir through the manifest, ingests the rows
whose image arrived, rejects the others with their reason, keeps each URL as the photo's source, and a rerun
fetches nothing again. Traffic goes to the misbehaving server on 127.0.0.1 only; the network guard fails the test on
any attempt to connect elsewhere (the refused addresses below must be refused before a connection is tried)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from prodmatch.application.ingesting import ingest_file
from prodmatch.catalog.download import DownloadOptions
from prodmatch.catalog.feed import image_urls
from prodmatch.catalog.ingest import ColumnOptions
from prodmatch.cli import app
from prodmatch.composition import Catalog
from prodmatch.config import Settings
from prodmatch.models.bundle import Bundle
from tests.catalog.misbehaving_server import MisbehavingServer, network_guard
from tests.fakes import FakeEmbedders

FAST = DownloadOptions(
    allow_hosts=("127.0.0.1/32",), read_timeout=0.5, total_timeout=5.0, backoff_base=0.01, backoff_max=0.05
)


@pytest.fixture
def server() -> Iterator[MisbehavingServer]:
    with network_guard() as violations, MisbehavingServer() as srv:
        yield srv
    assert not violations, f"connections outside loopback were attempted: {violations}"


def write_feed(folder: Path, server: MisbehavingServer) -> Path:
    rows = [
        ("p1", "Red shirt", server.url("/ok.jpg?w=800&token=s3cret")),
        ("p2", "Green mug", server.url("/ok.png")),
        ("p3", "Same photo elsewhere", server.url("/copy.jpg")),  # the bytes of /ok.jpg: one file for both
        ("p4", "Gone", server.url("/missing.jpg")),
        ("p5", "A web page", server.url("/html-as-jpeg.jpg")),
        ("p6", "Metadata service", "http://169.254.169.254/latest/meta-data/"),
        ("p7", "Redirected inward", server.url("/redirect?to=http://10.0.0.1/x.jpg")),
        ("p8", "Two photos", f"{server.url('/ok.webp')} | {server.url('/flaky.png')}"),
    ]
    path = folder / "feed.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "name", "ImageURL"])
        writer.writerows(rows)
    return path


def run_ingest(settings: Settings, bundle: Bundle, feed: Path) -> tuple[object, Catalog]:
    catalog = Catalog.open(settings, model=str(bundle.folder), create=True, embedders=FakeEmbedders())
    columns = ColumnOptions(image_col="ImageURL")
    return ingest_file(catalog, feed, columns, download=FAST), catalog


def test_ingest_downloads_feed_images_and_rejects_what_did_not_arrive(
    server: MisbehavingServer, settings: Settings, fake_bundle: Bundle, tmp_path: Path
) -> None:
    feed = write_feed(tmp_path, server)
    outcome, catalog = run_ingest(settings, fake_bundle, feed)
    try:
        report, summary = outcome.report, outcome.download  # type: ignore[attr-defined]
        assert (report.added, summary.total, summary.by_status["ok"]) == (4, 9, 5)
        reasons = {r.id: r.reason for r in report.rejected}
        assert set(reasons) == {"p4", "p5", "p6", "p7"}
        assert "failed_permanent" in reasons["p4"] and "http_404" in reasons["p4"]
        assert "refused" in reasons["p5"] and "refused" in reasons["p6"] and "refused" in reasons["p7"]
        assert "s3cret" not in json.dumps(report.as_dict())  # query secrets never reach the report
        products = catalog.store.get(["p1", "p3", "p8"])
        first, copy = products["p1"].images[0], products["p3"].images[0]
        assert first.path == copy.path and Path(first.path).is_relative_to(settings.data_dir.resolve() / "images")
        assert first.source_url == server.url("/ok.jpg?w=***&token=***")
        assert products["p8"].as_dict()["sources"] == [server.url("/ok.webp"), server.url("/flaky.png")]
        assert server.hits("/flaky.png") == 2  # a 500, retried, then the image
    finally:
        catalog.close()
    hits = sum(server.state.hits.values())
    again, catalog = run_ingest(settings, fake_bundle, feed)
    catalog.close()
    assert sum(server.state.hits.values()) == hits  # the manifest settles every URL: nothing is fetched again
    assert (again.report.unchanged, again.download.skipped) == (4, 9)  # type: ignore[attr-defined]


def test_image_urls_streams_the_distinct_urls_of_the_image_column(tmp_path: Path) -> None:
    feed = tmp_path / "feed.jsonl"
    rows = [
        {"sku": "a", "photos": ["https://cdn.test/1.jpg", "local.jpg"]},
        {"sku": "b", "photos": "https://cdn.test/2.jpg | https://cdn.test/1.jpg"},
        {"sku": "c"},
    ]
    feed.write_text("\n".join(json.dumps(row) for row in rows) + "\nnot json\n")
    assert image_urls(feed, ColumnOptions(image_col="photos")) == ["https://cdn.test/1.jpg", "https://cdn.test/2.jpg"]


def test_download_command_fetches_only_with_the_allow_listed_loopback(
    server: MisbehavingServer, tmp_path: Path
) -> None:
    feed = write_feed(tmp_path, server)
    data = tmp_path / "data"
    base = ["download", str(feed), "--data-dir", str(data), "--image-col", "ImageURL", "--json"]
    refused = CliRunner().invoke(app, base)
    assert refused.exit_code == 0, refused.output
    assert json.loads(refused.stdout.splitlines()[-1])["by_status"]["ok"] == 0  # loopback is refused by default
    assert sum(server.state.hits.values()) == 0
    metrics = tmp_path / "download.prom"
    result = CliRunner().invoke(
        app,
        [*base, "--allow-host", "127.0.0.1", "--metrics-file", str(metrics)],
        env={"PRODMATCH_DOWNLOAD__RETRY_FAILED": "true"},
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary["by_status"]["ok"] == 5 and summary["by_error_kind"]
    assert len(list((data / "images").glob("*/*"))) == 3  # five URLs, three distinct images (flaky.png = ok.png)
    assert 'prodmatch_catalog_download_urls_total{error_kind="",status="ok"} 5.0' in metrics.read_text()

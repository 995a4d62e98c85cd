"""`prodmatch download --engine ray`: the feed's URLs in shards downloaded by Ray tasks (a local Ray on 127.0.0.1)
from a test server on 127.0.0.1, into one feed folder: the same files and manifest as one process would leave,
one file per image, the per-host bound kept across shards, and a rerun (sharded or not) fetches nothing.

The Ray workers are other processes, which this process's network guard does not cover: every URL here points at
127.0.0.0/8 (the refused one at 127.0.0.2, outside the allow-list), so not even a broken defence could send a
packet elsewhere. The refusal rules themselves are tested in process, under the guard (test_download.py)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from prodmatch.catalog.download import download
from prodmatch.catalog.download_manifest import Manifest, Status
from prodmatch.catalog.feed import FeedFolder
from prodmatch.catalog.ray_download import download_on_ray, shard_urls
from prodmatch.cli import app
from tests.catalog.misbehaving_server import MisbehavingServer
from tests.catalog.test_download import assert_store_consistent, options

pytest.importorskip("ray")


@pytest.fixture
def server() -> Iterator[MisbehavingServer]:
    with MisbehavingServer() as started:
        yield started


def feed_urls(server: MisbehavingServer) -> list[str]:
    """20 distinct photos, one photo under two URLs, a 404 and a loopback address the allow-list leaves out."""
    unique = [server.url(f"/slow-unique.png?n={n}&pause=0.05") for n in range(20)]
    refused = server.url("/ok.jpg", host="127.0.0.2")
    return [*unique, server.url("/ok.jpg"), server.url("/copy.jpg"), server.url("/missing.jpg"), refused]


def test_urls_shard_evenly_once_each_and_the_same_way_every_time() -> None:
    urls = [f"https://cdn.example/p/{n}.jpg" for n in range(1000)]
    shards = shard_urls([*urls, " ", urls[0]], 4)
    assert sorted(url for shard in shards for url in shard) == sorted(urls)
    assert all(200 <= len(shard) <= 300 for shard in shards) and shards == shard_urls(urls, 4)
    few = shard_urls(urls[:2], 8)  # never more shards than URLs, never an empty one
    assert len(few) <= 2 and sorted(url for shard in few for url in shard) == urls[:2] and all(few)


@pytest.mark.usefixtures("local_ray")
def test_shards_leave_what_one_process_would_and_a_rerun_fetches_nothing(
    server: MisbehavingServer, tmp_path: Path
) -> None:
    feed, urls = FeedFolder(tmp_path), feed_urls(server)
    summary = download_on_ray(urls, feed, options(per_host=4), shards=3)
    assert (summary.total, summary.fetched) == (24, 24)
    assert summary.by_status == {"ok": 22, "failed_transient": 0, "failed_permanent": 1, "refused": 1}
    assert server.state.max_in_flight <= 4  # the per-host bound holds across the shards
    assert_store_consistent(feed.images, feed.manifest, complete=False)
    files = sorted(path.name for path in feed.images.glob("??/*"))
    assert len(files) == 21 and not list(feed.images.glob(".partial*/*.part"))  # the two URLs of one photo: one file
    with Manifest(feed.manifest) as manifest:
        assert len(list(manifest.records())) == 24
    hits = sum(server.state.hits.values())
    again = download_on_ray(urls, feed, options(per_host=4), shards=2)
    alone = download(urls, feed.images, feed.manifest, options())
    assert (again.fetched, again.skipped, alone.fetched, alone.skipped) == (0, 24, 0, 24)
    assert sum(server.state.hits.values()) == hits and again.by_status == summary.by_status


@pytest.mark.usefixtures("local_ray")
def test_the_cli_downloads_a_feed_with_ray(server: MisbehavingServer, tmp_path: Path) -> None:
    catalog = tmp_path / "feed.csv"
    with catalog.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["id", "name", "image"])
        writer.writerows([n, f"product {n}", url] for n, url in enumerate(feed_urls(server)))
    data = tmp_path / "data"
    command = ["download", str(catalog), "--data-dir", str(data), "--engine", "ray", "--shards", "2"]
    result = CliRunner().invoke(app, [*command, "--allow-host", "127.0.0.1", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{") :])
    assert (summary["total"], summary["by_status"]["ok"]) == (24, 22)
    with Manifest(FeedFolder(data).manifest) as manifest:
        assert {record.status for record in manifest.records()} == {Status.OK, Status.FAILED_PERMANENT, Status.REFUSED}

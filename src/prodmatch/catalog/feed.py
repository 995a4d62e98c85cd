"""Catalog feeds whose image column holds URLs: find the URLs, download them into the catalog's folder, and
resolve each row's URL to the downloaded file (or to the reason it has none) when the rows are ingested.

The folder keeps `images/<sha[:2]>/<sha>.<ext>` (content-addressed, so one file for a photo under two URLs) and
`downloads.sqlite`, the manifest: one row per URL, which makes a rerun fetch only what is missing or failed
transiently. Ingest never fetches anything itself; it only looks URLs up in the manifest.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from prodmatch.catalog.download import DownloadOptions, DownloadSummary, ProgressCallback, download
from prodmatch.catalog.download_manifest import ManifestRecord, Status
from prodmatch.catalog.download_safety import redact_url, url_key
from prodmatch.catalog.schema import ColumnOptions, RowError, detect_columns, image_values, is_url
from prodmatch.config import DownloadSettings


@dataclass(frozen=True)
class FeedFolder:
    """Where a catalog's downloaded images and their manifest live (inside the catalog's folder)."""

    folder: Path

    @property
    def images(self) -> Path:
        return self.folder / "images"

    @property
    def manifest(self) -> Path:
        return self.folder / "downloads.sqlite"


def download_options(settings: DownloadSettings, allow_hosts: list[str] | None = None) -> DownloadOptions:
    """The downloader's options from settings; ALLOW_HOSTS (the command line's) add to the configured list."""
    return DownloadOptions(
        concurrency=settings.concurrency,
        per_host=settings.per_host,
        connect_timeout=settings.connect_timeout_s,
        read_timeout=settings.read_timeout_s,
        max_attempts=settings.max_attempts,
        max_redirects=settings.max_redirects,
        max_bytes=settings.max_bytes,
        allow_hosts=tuple(dict.fromkeys([*settings.allow_hosts, *(allow_hosts or [])])),
        retry_permanent=settings.retry_failed,
    )


def image_urls(catalog: Path, columns: ColumnOptions) -> list[str]:
    """The distinct image URLs of the catalog, in file order (one pass over the file, rows not kept)."""
    mapping, rows = detect_columns(catalog, columns)
    if mapping is None or mapping.image is None:
        return []
    found: dict[str, None] = {}
    for row in rows:
        if row.error is None:
            found.update(dict.fromkeys(v for v in image_values(row.data.get(mapping.image)) if is_url(v)))
    return list(found)


def download_catalog_images(
    catalog: Path,
    columns: ColumnOptions,
    feed: FeedFolder,
    options: DownloadOptions,
    on_progress: ProgressCallback | None = None,
) -> DownloadSummary | None:
    """Download every image URL of CATALOG into FEED (resuming an earlier run); None when it lists no URL."""
    urls = image_urls(catalog, columns)
    if not urls:
        return None
    return download(urls, feed.images, feed.manifest, options, on_progress=on_progress)


class DownloadedImages:
    """Resolves an image URL to its downloaded file through the manifest; RowError says why there is none.

    Read-only, and usable from the ingest's read-ahead thread (one thread at a time); close() when done."""

    def __init__(self, feed: FeedFolder) -> None:
        self.feed = feed
        self._db: sqlite3.Connection | None = None
        if feed.manifest.is_file():
            self._db = sqlite3.connect(f"file:{feed.manifest}?mode=ro", uri=True, check_same_thread=False)
            self._db.row_factory = sqlite3.Row

    def record(self, url: str) -> ManifestRecord | None:
        if self._db is None:
            return None
        row = self._db.execute("SELECT * FROM downloads WHERE key = ?", (url_key(url),)).fetchone()
        return None if row is None else ManifestRecord.from_row(row)

    def __call__(self, url: str) -> Path:
        record = self.record(url)
        shown = redact_url(url)
        if record is None:
            raise RowError(f"image {shown} has not been downloaded (run prodmatch download)")
        if record.status is not Status.OK or record.path is None:
            detail = f"{record.error_kind}: {record.error}" if record.error_kind else str(record.error)
            raise RowError(f"image {shown} not downloaded: {record.status} ({detail})")
        path = self.feed.images / record.path
        if not path.is_file():
            raise RowError(f"image {shown} was downloaded but its file {path} is gone; download again")
        return path

    def close(self) -> None:
        if self._db is not None:
            self._db.close()

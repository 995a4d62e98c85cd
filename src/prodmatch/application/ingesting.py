"""Writing catalogs: download a feed's image URLs, ingest a catalog file, then recalibrate the decision when
anything changed."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from prodmatch.catalog.download import DownloadOptions, DownloadSummary
from prodmatch.catalog.download import ProgressCallback as DownloadProgress
from prodmatch.catalog.feed import DownloadedImages, FeedFolder, download_catalog_images, download_options, image_urls
from prodmatch.catalog.ingest import ColumnOptions, IngestReport, ProgressCallback
from prodmatch.composition import Catalog, EmbedderFactory
from prodmatch.config import Settings
from prodmatch.errors import ProdmatchError
from prodmatch.matching.calibration import calibrate_decisions
from prodmatch.matching.decision import Calibration

# How a feed's image URLs get downloaded: (catalog file, columns, feed folder, options, progress) -> the summary, or
# None when the catalog lists no URL. In this process (download_catalog_images), or sharded on Ray.
FeedDownloader = Callable[
    [Path, ColumnOptions, FeedFolder, DownloadOptions, DownloadProgress | None], DownloadSummary | None
]


@dataclass
class IngestOutcome:
    report: IngestReport
    calibrations: dict[str, Calibration] | None = field(default=None)  # None: nothing changed, not recalibrated
    download: DownloadSummary | None = None  # None: the catalog lists no image URL


def download_images(
    settings: Settings,
    folder: Path,
    path: Path,
    columns: ColumnOptions,
    allow_hosts: list[str] | None = None,
    on_progress: DownloadProgress | None = None,
    downloader: FeedDownloader = download_catalog_images,
) -> DownloadSummary | None:
    """Download the image URLs of the catalog file at PATH into the catalog folder FOLDER (resumable: a rerun
    fetches only what is missing or failed transiently). None when the catalog lists no URL."""
    options = download_options(settings.download, allow_hosts)
    return downloader(path, columns, FeedFolder(folder), options, on_progress)


def ingest_file(
    catalog: Catalog,
    path: Path,
    columns: ColumnOptions,
    images_root: Path | None = None,
    progress: ProgressCallback | None = None,
    *,
    download: DownloadOptions | None = None,
    download_progress: DownloadProgress | None = None,
    downloader: FeedDownloader = download_catalog_images,
) -> IngestOutcome:
    """Add or update the products of the catalog file at PATH; recalibrate when products were added or changed.

    Image URLs are downloaded first (DOWNLOAD: the options, else the catalog's settings); a row whose image could
    not be downloaded or was refused is rejected with the reason."""
    feed = FeedFolder(catalog.location.folder)
    options = download or download_options(catalog.settings.download)
    # Outside the lock: a long download must not hold up the API's queries on the same catalog.
    summary = downloader(path, columns, feed, options, download_progress)
    downloaded = DownloadedImages(feed)
    try:
        with catalog.lock:
            report = catalog.ingester().ingest_file(path, columns, images_root, progress, downloaded)
            catalog.facts.refresh()
    finally:
        downloaded.close()
    outcome = IngestOutcome(report, download=summary)
    if report.added or report.updated:
        outcome.calibrations = calibrate(catalog)
    return outcome


def engine_embedders(engine: str, ray_address: str | None = None, actors: int | None = None) -> EmbedderFactory | None:
    """The model factory for an ingest ENGINE: None for "local" (the catalog's own, in process), Ray actors for
    "ray" (a local Ray, or the cluster at RAY_ADDRESS)."""
    if _check_engine(engine) == "local":
        return None
    ray_engine = _ray_module("ray_engine")
    ray_engine.start_ray(ray_address)
    embedders: EmbedderFactory = ray_engine.RayEmbedders(actors or 2)
    return embedders


def engine_downloader(engine: str, ray_address: str | None = None, shards: int | None = None) -> FeedDownloader:
    """How an ENGINE downloads a feed's images: in this process ("local"), or in SHARDS Ray tasks ("ray"; by
    default one per CPU the cluster has) writing the same feed folder."""
    if _check_engine(engine) == "local":
        return download_catalog_images
    ray_engine, ray_download = _ray_module("ray_engine"), _ray_module("ray_download")
    ray_engine.start_ray(ray_address)

    def download_sharded(
        path: Path, columns: ColumnOptions, feed: FeedFolder, options: DownloadOptions, _per_url: object = None
    ) -> DownloadSummary | None:
        # _per_url: the URLs are fetched in Ray's worker processes, so per-URL progress has no way back here
        urls = image_urls(path, columns)
        count = shards or max(1, int(ray_engine.ray.cluster_resources().get("CPU", 1)))
        return ray_download.download_on_ray(urls, feed, options, count) if urls else None

    return download_sharded


def _check_engine(engine: str) -> str:
    if engine not in ("local", "ray"):
        raise ProdmatchError(f"unknown engine {engine!r}; use local or ray")
    return engine


def _ray_module(name: str) -> ModuleType:
    """prodmatch.catalog.NAME, a module that needs Ray: imported only when the ray engine is chosen."""
    try:
        return importlib.import_module(f"prodmatch.catalog.{name}")
    except ImportError as exc:  # the optional extra is not installed
        raise ProdmatchError("the ray engine needs Ray: pip install 'prodmatch[ray]'") from exc


def calibrate(catalog: Catalog) -> dict[str, Calibration]:
    """Re-fit the match / no-match decision on the catalog's own products."""
    with catalog.lock:
        return calibrate_decisions(catalog.matcher, catalog.embedder())

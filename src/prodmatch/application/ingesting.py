"""Writing catalogs: download a feed's image URLs, ingest a catalog file, then recalibrate the decision when
anything changed."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from prodmatch.catalog.download import DownloadOptions, DownloadSummary
from prodmatch.catalog.download import ProgressCallback as DownloadProgress
from prodmatch.catalog.feed import DownloadedImages, FeedFolder, download_catalog_images, download_options
from prodmatch.catalog.ingest import ColumnOptions, IngestReport, ProgressCallback
from prodmatch.composition import Catalog, EmbedderFactory
from prodmatch.config import Settings
from prodmatch.errors import ProdmatchError
from prodmatch.matching.calibration import calibrate_decisions
from prodmatch.matching.decision import Calibration


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
) -> DownloadSummary | None:
    """Download the image URLs of the catalog file at PATH into the catalog folder FOLDER (resumable: a rerun
    fetches only what is missing or failed transiently). None when the catalog lists no URL."""
    options = download_options(settings.download, allow_hosts)
    return download_catalog_images(path, columns, FeedFolder(folder), options, on_progress)


def ingest_file(
    catalog: Catalog,
    path: Path,
    columns: ColumnOptions,
    images_root: Path | None = None,
    progress: ProgressCallback | None = None,
    *,
    download: DownloadOptions | None = None,
    download_progress: DownloadProgress | None = None,
) -> IngestOutcome:
    """Add or update the products of the catalog file at PATH; recalibrate when products were added or changed.

    Image URLs are downloaded first (DOWNLOAD: the options, else the catalog's settings); a row whose image could
    not be downloaded or was refused is rejected with the reason."""
    feed = FeedFolder(catalog.location.folder)
    options = download or download_options(catalog.settings.download)
    # Outside the lock: a long download must not hold up the API's queries on the same catalog.
    summary = download_catalog_images(path, columns, feed, options, download_progress)
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
    "ray" (a local Ray, or the cluster at RAY_ADDRESS). Ray is imported only here, when chosen."""
    if engine == "local":
        return None
    if engine != "ray":
        raise ProdmatchError(f"unknown engine {engine!r}; use local or ray")
    try:
        from prodmatch.catalog.ray_engine import RayEmbedders, start_ray
    except ImportError as exc:  # the optional extra is not installed
        raise ProdmatchError("the ray engine needs Ray: pip install 'prodmatch[ray]'") from exc
    start_ray(ray_address)
    return RayEmbedders(actors or 2)


def calibrate(catalog: Catalog) -> dict[str, Calibration]:
    """Re-fit the match / no-match decision on the catalog's own products."""
    with catalog.lock:
        return calibrate_decisions(catalog.matcher, catalog.embedder())

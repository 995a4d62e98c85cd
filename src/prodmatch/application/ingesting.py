"""Writing catalogs: ingest a catalog file, then recalibrate the decision when anything changed."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from prodmatch.catalog.ingest import ColumnOptions, IngestReport, ProgressCallback
from prodmatch.composition import Catalog
from prodmatch.matching.calibration import calibrate_decisions
from prodmatch.matching.decision import Calibration


@dataclass
class IngestOutcome:
    report: IngestReport
    calibrations: dict[str, Calibration] | None = field(default=None)  # None: nothing changed, not recalibrated


def ingest_file(
    catalog: Catalog,
    path: Path,
    columns: ColumnOptions,
    images_root: Path | None = None,
    progress: ProgressCallback | None = None,
) -> IngestOutcome:
    """Add or update the products of the catalog file at PATH; recalibrate when products were added or changed."""
    with catalog.lock:
        report = catalog.ingester().ingest_file(path, columns, images_root, progress)
        catalog.facts.refresh()
    outcome = IngestOutcome(report)
    if report.added or report.updated:
        outcome.calibrations = calibrate(catalog)
    return outcome


def calibrate(catalog: Catalog) -> dict[str, Calibration]:
    """Re-fit the match / no-match decision on the catalog's own products."""
    with catalog.lock:
        return calibrate_decisions(catalog.matcher, catalog.embedder())

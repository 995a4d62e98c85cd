"""The sample catalog ingested for tests that need a real data dir."""

from __future__ import annotations

from pathlib import Path

from prodmatch.catalog.ingest import CatalogIngester, ColumnOptions
from prodmatch.config import Settings
from prodmatch.stores.datadir import DataDir

MYNTRA_COLUMNS = ColumnOptions("ProductId", "ProductTitle", "Image")


def ingest_myntra(settings: Settings, myntra: Path, rows: int | None = None) -> DataDir:
    """An open data dir holding myntra-dev (or its first ROWS products), embedded with the offline model."""
    catalog, images_root = myntra / "catalog.csv", None
    if rows is not None:
        catalog, images_root = Path(settings.data_dir).parent / f"catalog-{rows}.csv", myntra / "images"
        catalog.write_text("".join((myntra / "catalog.csv").read_text().splitlines(keepends=True)[: rows + 1]))
    datadir = DataDir.open(settings, model="offline-effnet-minilm", create=True)
    CatalogIngester(datadir).ingest_file(catalog, MYNTRA_COLUMNS, images_root)
    return datadir

"""The sample catalog ingested for tests that need a real catalog, and one-line queries against it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from prodmatch.application.querying import Matcher, MatchQuery
from prodmatch.catalog.ingest import ColumnOptions
from prodmatch.composition import Catalog, EmbedderFactory
from prodmatch.config import Settings
from prodmatch.matching.service import MatchResult
from prodmatch.models.factory import create_embedder
from prodmatch.stores.filters import Filter
from prodmatch.stores.records import QueryLogEntry

MYNTRA_COLUMNS = ColumnOptions("ProductId", "ProductTitle", "Image")


def ingest_myntra(
    settings: Settings,
    myntra: Path,
    rows: int | None = None,
    model: str = "offline-effnet-minilm",
    embedders: EmbedderFactory = create_embedder,
) -> Catalog:
    """An open catalog holding myntra-dev (or its first ROWS products), embedded with MODEL (a registry name or a
    bundle folder) as EMBEDDERS runs it: the offline model by default, tests.fakes' model in the fast tier."""
    catalog, images_root = myntra / "catalog.csv", None
    if rows is not None:
        catalog, images_root = Path(settings.data_dir).parent / f"catalog-{rows}.csv", myntra / "images"
        catalog.write_text("".join((myntra / "catalog.csv").read_text().splitlines(keepends=True)[: rows + 1]))
    opened = Catalog.open(settings, model=model, create=True, embedders=embedders)
    opened.ingester().ingest_file(catalog, MYNTRA_COLUMNS, images_root)
    opened.facts.refresh()
    return opened


class KeptLog:
    """A query log sink that keeps entries in memory (tests read them back)."""

    def __init__(self) -> None:
        self.entries: list[QueryLogEntry] = []

    def record(self, entry: QueryLogEntry) -> None:
        self.entries.append(entry)


def match_photo(catalog: Catalog, photo: Path | bytes, top_k: int = 10, filters: Sequence[Filter] = ()) -> MatchResult:
    """The match use case for a photo, as the CLI runs it."""
    data = photo.read_bytes() if isinstance(photo, Path) else photo
    return Matcher(catalog, KeptLog(), 2000).match(MatchQuery(image=data, top_k=top_k, filters=filters)).result


def match_words(catalog: Catalog, text: str, top_k: int = 10, filters: Sequence[Filter] = ()) -> MatchResult:
    """The match use case for a description, as the CLI runs it."""
    return Matcher(catalog, KeptLog(), 2000).match(MatchQuery(text=text, top_k=top_k, filters=filters)).result

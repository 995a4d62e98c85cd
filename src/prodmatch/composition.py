"""The composition root: one opened catalog — its metadata store, vector indexes, model and files — built from a
CatalogLocation and Settings. The application's use cases work through it; nothing below it knows it exists.

    with open_catalog(settings) as catalog:          # the configured catalog
        catalog.matcher.match_vectors(...)
    with open_catalog(settings, location=CatalogLocation.embedded(tmp), create=True) as private: ...
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path

from PIL import Image

from prodmatch.catalog.ingest import CatalogIngester
from prodmatch.config import CatalogLocation, Settings
from prodmatch.errors import NotFoundError
from prodmatch.matching.facts import CatalogFacts
from prodmatch.matching.service import MatchService
from prodmatch.matching.verification import LocalFeatures
from prodmatch.models.bundle import Bundle, is_bundle
from prodmatch.models.embedder import Embedder
from prodmatch.models.factory import choose_default_model, create_embedder, ensure_bundle
from prodmatch.models.preprocess import draft_side, open_image
from prodmatch.models.record import MODEL_KEY, ModelRecord
from prodmatch.stores.catalog_stores import CatalogStores
from prodmatch.stores.factory import open_metadata_store
from prodmatch.stores.files import CatalogFiles
from prodmatch.stores.protocols import MetadataStore

METADATA_FILE = "metadata.db"
LEXICAL_FILE = "lexical-index.pickle"  # the built lexical index, kept between starts (matching/facts.py)
Announce = Callable[[str], None]
# How a catalog turns its bundle into a model: models.factory.create_embedder, unless a caller (a test's
# deterministic fake, say) gives another.
EmbedderFactory = Callable[[Bundle, Settings], Embedder]


class Catalog:
    """An opened catalog. Indexes and the model load on first use; `lock` serialises index writes and searches
    (FAISS indexes must not change under a running search)."""

    def __init__(
        self,
        location: CatalogLocation,
        settings: Settings,
        store: MetadataStore,
        record: ModelRecord,
        embedders: EmbedderFactory = create_embedder,
    ) -> None:
        self.location = location
        self.settings = settings
        self.record = record
        self.stores = CatalogStores(store, location.vectors_url, record.spaces, settings.index)
        self.files = CatalogFiles(location.folder)
        self.facts = CatalogFacts(store, location.folder / LEXICAL_FILE)
        self.lock = threading.RLock()
        self._embedders = embedders
        self._embedder: Embedder | None = None
        self._embedder_lock = threading.Lock()

    @property
    def store(self) -> MetadataStore:
        return self.stores.store

    @cached_property
    def matcher(self) -> MatchService:
        return MatchService(self.stores, self.record, self.settings.matching, self.facts, self.features)

    @cached_property
    def features(self) -> LocalFeatures:
        """Catalog images' local features, for geometric verification of image queries."""
        return LocalFeatures(self.files, self.settings.matching)

    def ingester(self, batch_size: int = 32) -> CatalogIngester:
        return CatalogIngester(
            self.stores, self.embedder, self.files, self.settings.runtime, batch_size, image_hook=self.features.compute
        )

    def embedder(self) -> Embedder:
        """The catalog's model, loaded once; refuses a bundle whose fingerprint changed."""
        with self._embedder_lock:
            if self._embedder is None:
                self._embedder = self._embedders(self._bundle(), self.settings)
            return self._embedder

    def _bundle(self) -> Bundle:
        folder = Path(self.record.bundle)
        if is_bundle(folder):
            bundle = Bundle(folder)
        else:  # the bundle folder moved (another machine): the registry name re-exports it
            bundle = ensure_bundle(self.record.name, self.settings, self.record.precision)  # type: ignore[arg-type]
        self.record.check_bundle(bundle, str(self.location.folder))
        return bundle

    def decode(self, source: bytes | Path) -> Image.Image:
        """Decode a photo the way ingest does (JPEG draft decoding to twice the model's input size)."""
        runtime = self.settings.runtime
        draft = draft_side(self.embedder().manifest.image.preprocess) if runtime.jpeg_draft else None
        return open_image(source, max_pixels=runtime.max_image_pixels, draft_short_side=draft)

    def warm(self) -> None:
        """Load the model and open (and check) the indexes now rather than on the first query."""
        self.embedder()
        self.stores.open_indexes()
        if self.settings.matching.hybrid_text:
            self.facts.lexical()  # saved in the catalog folder, or built from the metadata store (matching.lexical)
        self.facts.value_shares()  # every answer's keywords need them: not the first query's cost

    def save(self) -> None:
        self.stores.save()

    def close(self) -> None:
        self.stores.close()
        if self._embedder is not None:
            self._embedder.close()

    @classmethod
    def open(
        cls,
        settings: Settings,
        *,
        location: CatalogLocation | None = None,
        model: str | None = None,
        create: bool = False,
        announce: Announce = lambda _message: None,
        embedders: EmbedderFactory = create_embedder,
    ) -> Catalog:
        """Open the catalog at LOCATION (default: the configured one, settings.location()); only the location
        decides where data is read and written. With CREATE, a new one is set up for MODEL (or the default)."""
        location = location or settings.location()
        folder = location.folder
        embedded_metadata = location.metadata_url == CatalogLocation.embedded(folder).metadata_url
        if embedded_metadata and not create and not (folder / METADATA_FILE).exists():
            raise NotFoundError(_no_catalog(folder))
        folder.mkdir(parents=True, exist_ok=True)
        store = open_metadata_store(location.metadata_url)
        try:
            record = _record(store, settings, folder, model, create, announce)
        except BaseException:
            store.close()
            raise
        return cls(location, settings, store, record, embedders)


def _record(
    store: MetadataStore, settings: Settings, folder: Path, model: str | None, create: bool, announce: Announce
) -> ModelRecord:
    """The catalog's model record; a new catalog (CREATE) records MODEL or the default model."""
    saved = store.get_meta(MODEL_KEY)
    if saved is not None:
        record = ModelRecord.model_validate(saved)
        if model is not None:
            record.refuse_other_model(model, str(folder))
        return record
    if not create:
        raise NotFoundError(_no_catalog(folder))
    if model is None:
        model, why = choose_default_model(settings)
        announce(f"model: {why}")
    record = ModelRecord.of(ensure_bundle(model, settings))
    store.set_meta(MODEL_KEY, record.model_dump())
    return record


@contextmanager
def open_catalog(
    settings: Settings,
    *,
    location: CatalogLocation | None = None,
    model: str | None = None,
    create: bool = False,
    announce: Announce = lambda _message: None,
    embedders: EmbedderFactory = create_embedder,
) -> Iterator[Catalog]:
    """Catalog.open(...) as a context manager: closed (indexes saved by their writers, stores released) on exit."""
    catalog = Catalog.open(
        settings, location=location, model=model, create=create, announce=announce, embedders=embedders
    )
    try:
        yield catalog
    finally:
        catalog.close()


def _no_catalog(path: Path) -> str:
    return f"no catalog in {path} (or its metadata store); run `prodmatch ingest CATALOG --data-dir {path}` first"

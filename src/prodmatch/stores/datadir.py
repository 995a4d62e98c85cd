"""A data dir: the metadata store, one vector index per space, and the model bundle that built them."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from pydantic import BaseModel

from prodmatch.config import CatalogLocation, Settings
from prodmatch.errors import ModelMismatchError, NotFoundError
from prodmatch.models.bundle import Bundle, is_bundle
from prodmatch.models.embedder import Embedder
from prodmatch.models.factory import choose_default_model, create_embedder, ensure_bundle
from prodmatch.stores.factory import open_metadata_store, open_vector_index
from prodmatch.stores.protocols import MetadataStore, VectorIndex
from prodmatch.stores.records import ProductUpsert, VectorChanges

MODEL_KEY = "model"
METADATA_FILE = "metadata.db"
THUMBNAIL_SIDE = 320


class ModelRecord(BaseModel):
    """Which bundle built a data dir; a query model must have the same fingerprint."""

    name: str
    precision: str
    fingerprint: str
    bundle: str
    shared_space: bool
    spaces: dict[str, int]

    @classmethod
    def of(cls, bundle: Bundle) -> ModelRecord:
        manifest = bundle.manifest
        return cls(
            name=manifest.name,
            precision=manifest.precision,
            fingerprint=manifest.fingerprint,
            bundle=str(bundle.folder.resolve()),
            shared_space=manifest.shared_space,
            spaces=manifest.spaces,
        )


class RepairReport(BaseModel):
    space: str
    added: int
    removed: int


class DataDir:
    """Opened stores for one data dir. Indexes and the model load on first use."""

    def __init__(
        self, location: CatalogLocation, settings: Settings, store: MetadataStore, record: ModelRecord
    ) -> None:
        self.location = location
        self.path = location.folder
        self.settings = settings
        self.store = store
        self.record = record
        self._indexes: dict[str, VectorIndex] = {}
        self._embedder: Embedder | None = None
        self.repairs: list[RepairReport] = []

    @classmethod
    def open(
        cls,
        settings: Settings,
        *,
        location: CatalogLocation | None = None,
        model: str | None = None,
        create: bool = False,
        announce: Callable[[str], None] = lambda _message: None,
    ) -> DataDir:
        """Open the catalog at LOCATION (default: the configured one, settings.location()); only the location
        decides where data is read and written. With CREATE, a new one is set up for MODEL (or the default)."""
        location = location or settings.location()
        path = location.folder
        embedded_metadata = location.metadata_url == CatalogLocation.embedded(path).metadata_url
        if embedded_metadata and not (path / METADATA_FILE).exists() and not create:
            raise NotFoundError(_no_catalog(path))
        path.mkdir(parents=True, exist_ok=True)
        store = open_metadata_store(location.metadata_url)
        saved = store.get_meta(MODEL_KEY)
        if saved is None and not create:
            store.close()
            raise NotFoundError(_no_catalog(path))
        if saved is not None:
            record = ModelRecord.model_validate(saved)
            if model is not None:
                _refuse_other_model(record, model, path)
            return cls(location, settings, store, record)
        if model is None:
            model, why = choose_default_model(settings)
            announce(f"model: {why}")
        record = ModelRecord.of(ensure_bundle(model, settings))
        store.set_meta(MODEL_KEY, record.model_dump())
        return cls(location, settings, store, record)

    def index(self, space: str) -> VectorIndex:
        """The index for SPACE, checked against the stored vectors (and repaired) when first opened."""
        if space not in self._indexes:
            index = open_vector_index(self.location.vectors_url, space, self.record.spaces[space], self.settings.index)
            self._reconcile(space, index)
            self._indexes[space] = index
        return self._indexes[space]

    def _reconcile(self, space: str, index: VectorIndex) -> None:
        stored, present = self.store.vector_ids(space), index.ids()
        missing, extra = np.setdiff1d(stored, present), np.setdiff1d(present, stored)
        if not len(missing) and not len(extra):
            return
        index.remove(extra.tolist())
        for batch_ids, batch_vectors, labels in self.store.iter_vectors(space, missing):
            index.add(batch_ids, batch_vectors, labels)
        index.save()
        self.repairs.append(RepairReport(space=space, added=len(missing), removed=len(extra)))

    def embedder(self) -> Embedder:
        """The data dir's model, loaded once; refuses a bundle whose fingerprint changed."""
        if self._embedder is None:
            folder = Path(self.record.bundle)
            bundle = (
                Bundle(folder)
                if is_bundle(folder)
                else ensure_bundle(
                    self.record.name,
                    self.settings,
                    self.record.precision,  # type: ignore[arg-type]
                )
            )
            if bundle.manifest.fingerprint != self.record.fingerprint:
                raise ModelMismatchError(
                    f"bundle {bundle.folder} (fingerprint {bundle.manifest.fingerprint}) is not the one that built "
                    f"{self.path} ({self.record.fingerprint}); re-ingest into a new data dir"
                )
            self._embedder = create_embedder(bundle, self.settings)
        return self._embedder

    def upsert(self, items: Sequence[ProductUpsert]) -> VectorChanges:
        """Write products and vectors to the store (one transaction), then to the indexes."""
        self._open_indexes()  # reconcile before the store moves ahead, so this change is applied exactly once
        changes = self.store.upsert(items)
        self._apply(changes)
        return changes

    def delete(self, product_id: str) -> VectorChanges:
        self._open_indexes()
        changes = self.store.delete(product_id)
        self._apply(changes)
        return changes

    def _open_indexes(self) -> None:
        for space in self.record.spaces:
            self.index(space)

    def _apply(self, changes: VectorChanges) -> None:
        for space, removed in changes.removed.items():
            self.index(space).remove(removed)
        for space, (added, vectors) in changes.added.items():
            self.index(space).add(added, vectors, [changes.labels[int(i)] for i in added])
        for space, kept in changes.relabelled.items():
            self.index(space).relabel(kept, [changes.labels[i] for i in kept])

    def save(self) -> None:
        for index in self._indexes.values():
            index.save()

    def close(self) -> None:
        for index in self._indexes.values():
            index.close()
        if self._embedder is not None:
            self._embedder.close()
        self.store.close()

    def thumbnail_path(self, sha256: str) -> Path:
        return self.path / "thumbnails" / f"{sha256}.jpg"

    def save_thumbnail(self, sha256: str, image: Image.Image) -> None:
        """A small JPEG of a product image for result grids (written once per distinct image, atomically)."""
        target = self.thumbnail_path(sha256)
        if target.exists():
            return
        target.parent.mkdir(exist_ok=True)
        small = image.copy()
        small.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
        # a unique partial file: two products listing the same photo may be decoded at the same moment
        with tempfile.NamedTemporaryFile(dir=target.parent, suffix=".part", delete=False) as partial:
            small.save(partial, format="JPEG", quality=85)
        Path(partial.name).replace(target)

    def disk_usage(self) -> dict[str, int]:
        return {item.name: item.stat().st_size for item in sorted(self.path.iterdir()) if item.is_file()}


def _no_catalog(path: Path) -> str:
    return f"no catalog in {path} (or its metadata store); run `prodmatch ingest CATALOG --data-dir {path}` first"


def _refuse_other_model(record: ModelRecord, model: str, path: Path) -> None:
    if is_bundle(Path(model)):
        fingerprint = Bundle(Path(model)).manifest.fingerprint
        if fingerprint == record.fingerprint:
            return
        detail = f"bundle {model} has fingerprint {fingerprint}"
    elif model == record.name:
        return
    else:
        detail = f"model {model!r} was asked for"
    raise ModelMismatchError(
        f"{path} was built with {record.name} ({record.precision}, fingerprint {record.fingerprint}) but {detail}; "
        f"vectors from different models cannot be mixed. Use another --data-dir, or omit --model."
    )

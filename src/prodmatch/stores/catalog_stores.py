"""A catalog's metadata store and its vector indexes (one per space), kept in step.

The metadata store is the truth: it holds the vectors too, and every write goes there first (one transaction per
batch), then to the indexes. An index that fell behind (a crash between a write and an index save) is repaired
from the stored vectors when it is first opened, so a change is applied to it exactly once.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel

from prodmatch.config import IndexSettings
from prodmatch.stores.factory import open_vector_index
from prodmatch.stores.protocols import MetadataStore, VectorIndex
from prodmatch.stores.records import ProductUpsert, VectorChanges


class RepairReport(BaseModel):
    space: str
    added: int
    removed: int


class CatalogStores:
    """The metadata store plus one lazily opened, checked vector index per space."""

    def __init__(self, store: MetadataStore, vectors_url: str, spaces: dict[str, int], settings: IndexSettings) -> None:
        self.store = store
        self.vectors_url = vectors_url
        self.spaces = spaces
        self.settings = settings
        self.repairs: list[RepairReport] = []
        self._indexes: dict[str, VectorIndex] = {}

    def index(self, space: str) -> VectorIndex:
        """The index for SPACE, checked against the stored vectors (and repaired) when first opened."""
        if space not in self._indexes:
            index = open_vector_index(self.vectors_url, space, self.spaces[space], self.settings)
            self._reconcile(space, index)
            self._indexes[space] = index
        return self._indexes[space]

    def open_indexes(self) -> None:
        for space in self.spaces:
            self.index(space)

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

    def upsert(self, items: Sequence[ProductUpsert]) -> VectorChanges:
        """Write products and vectors to the store (one transaction), then to the indexes."""
        self.open_indexes()  # reconcile before the store moves ahead, so this change is applied exactly once
        changes = self.store.upsert(items)
        self._apply(changes)
        return changes

    def delete(self, product_id: str) -> VectorChanges:
        self.open_indexes()
        changes = self.store.delete(product_id)
        self._apply(changes)
        return changes

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
        self._indexes.clear()
        self.store.close()

"""Plain data passed across the store seams (no ORM objects leak out of a store)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

JsonValue = Any


@dataclass(frozen=True)
class ImageRef:
    path: str  # the resolved file path
    sha256: str
    signature: bytes | None = None  # 16x16 grey thumbnail: finds the same photo saved as another file
    # Where the catalog said the photo came from (its feed URL, credentials and query values redacted);
    # None for a local file. Shown as the product's sources (seed 003's source attribution).
    source_url: str | None = None


@dataclass
class Product:
    """A catalog product as stored: id, display name, searchable text, images and free-form attributes."""

    id: str
    name: str | None
    text: str
    attributes: dict[str, JsonValue] = field(default_factory=dict)
    images: list[ImageRef] = field(default_factory=list)
    content_hash: str = ""
    embed_hash: str = ""

    def as_dict(self) -> dict[str, JsonValue]:
        """The product as the API and CLI show it: attributes plus name, image paths and, for downloaded
        photos, "sources": each image's feed URL (None for a local file), in the order of "images"."""
        shown: dict[str, JsonValue] = {"name": self.name, **self.attributes}
        shown["images"] = [image.path for image in self.images]
        if any(image.source_url for image in self.images):
            shown["sources"] = [image.source_url for image in self.images]
        return shown


@dataclass
class SpaceVectors:
    """Vectors of one product in one space (image vectors: one per image; text: one)."""

    space: str
    vectors: np.ndarray
    image_shas: list[str] | None = None  # image space: the file each vector was computed from


@dataclass
class ProductUpsert:
    """A product to write; vectors None keeps its stored vectors (only metadata changed)."""

    product: Product
    vectors: list[SpaceVectors] | None


@dataclass(frozen=True)
class VectorLabel:
    """What a vector index may keep beside a vector so it can filter inside the search: its product and
    the product's searchable attributes (filters.searchable)."""

    product_id: str
    search: dict[str, dict[str, JsonValue]]


@dataclass
class VectorChanges:
    """What an upsert or delete did to the vector table, for the indexes to follow.

    labels: the label of every added vector and of every kept vector whose product changed (relabelled)."""

    removed: dict[str, list[int]] = field(default_factory=dict)
    added: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    relabelled: dict[str, list[int]] = field(default_factory=dict)
    labels: dict[int, VectorLabel] = field(default_factory=dict)

    def merge(self, other: VectorChanges) -> None:
        for space, removed in other.removed.items():
            self.removed.setdefault(space, []).extend(removed)
        for space, kept in other.relabelled.items():
            self.relabelled.setdefault(space, []).extend(kept)
        self.labels.update(other.labels)
        for space, (added, vectors) in other.added.items():
            if space in self.added:
                old_ids, old_vectors = self.added[space]
                self.added[space] = (np.concatenate([old_ids, added]), np.vstack([old_vectors, vectors]))
            else:
                self.added[space] = (added, vectors)


@dataclass
class QueryLogEntry:
    """What the query log keeps about one answered match request (no query content, only its hash).

    query_id names the answer (clients send it back as feedback); request_id is the HTTP request's id (the access
    log's); photo_sha names the query photo when it was kept for learning from feedback."""

    at: datetime
    modality: str
    query_hash: str
    top_ids: list[str]
    top_scores: list[float]
    took_ms: float
    is_match: bool | None
    confidence: float | None
    query_id: str = ""
    request_id: str = ""
    photo_sha: str | None = None


@dataclass(frozen=True)
class Feedback:
    """A person's verdict on one product for one answered query: it is (is_match) or is not the product."""

    query_id: str
    product_id: str
    is_match: bool
    at: datetime


@dataclass(frozen=True)
class ApiKey:
    """An API key as stored: never the key itself, only a salt and the SHA-256 of salt and secret."""

    id: str
    name: str
    scope: str
    salt: str
    digest: str
    created_at: datetime
    revoked_at: datetime | None = None

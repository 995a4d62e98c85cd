"""The one place that maps store URLs and settings to MetadataStore / VectorIndex implementations."""

from __future__ import annotations

from pathlib import Path

from prodmatch.config import IndexSettings
from prodmatch.stores.protocols import MetadataStore, VectorIndex

METADATA_SCHEMES = ("sqlite",)
VECTOR_KINDS = ("faiss",)


def open_metadata_store(url: str) -> MetadataStore:
    """A MetadataStore for URL (sqlite:///path)."""
    scheme = url.split(":", 1)[0].split("+", 1)[0]
    if scheme == "sqlite":
        from prodmatch.stores.sql import SqlMetadataStore

        return SqlMetadataStore(url)
    raise ValueError(f"unsupported metadata store URL {url!r}; valid schemes: {', '.join(METADATA_SCHEMES)}")


def open_vector_index(kind: str, path: Path, dims: int, settings: IndexSettings) -> VectorIndex:
    """A VectorIndex of KIND persisted at PATH."""
    if kind == "faiss":
        from prodmatch.stores.faiss_index import FaissIndex

        return FaissIndex(path, dims, settings)
    raise ValueError(f"unsupported vector index {kind!r}; valid kinds: {', '.join(VECTOR_KINDS)}")

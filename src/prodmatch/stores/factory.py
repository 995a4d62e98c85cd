"""The one place that maps store URLs (stores/urls.py) to MetadataStore / VectorIndex implementations.
Drivers are pip extras, imported only when chosen."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from prodmatch.config import IndexSettings
from prodmatch.errors import StoreConfigError
from prodmatch.stores.protocols import MetadataStore, VectorIndex
from prodmatch.stores.urls import family_of, require_driver, scheme_of

METADATA_SCHEMES = ("sqlite", "postgresql", "mongodb")
VECTOR_SCHEMES = ("faiss", "pgvector", "qdrant", "qdrant+https", "qdrant+local", "milvus", "chroma")
_DRIVERS = {"postgresql": ("psycopg", "postgres"), "mongodb": ("pymongo", "mongo")}
_INDEX_DRIVERS = {
    "pgvector": ("pgvector", "pgvector"),
    "qdrant": ("qdrant_client", "qdrant"),
    "milvus": ("pymilvus", "milvus"),
    "chroma": ("chromadb", "chroma"),
}


def open_metadata_store(url: str) -> MetadataStore:
    """A MetadataStore for URL."""
    family = family_of(url)
    if family in _DRIVERS:
        require_driver(*_DRIVERS[family], url)
    if family in ("sqlite", "postgresql"):
        from prodmatch.stores.sql import SqlMetadataStore

        return SqlMetadataStore(url)
    if family == "mongodb":
        from prodmatch.stores.mongo import MongoMetadataStore

        return MongoMetadataStore(url)
    raise StoreConfigError(f"unsupported metadata store URL {url!r}; schemes: {', '.join(METADATA_SCHEMES)}")


def open_vector_index(url: str, space: str, dims: int, settings: IndexSettings) -> VectorIndex:
    """The VectorIndex for vector SPACE (image, text) of DIMS dimensions at URL."""
    scheme, family = scheme_of(url), family_of(url)
    if family in _INDEX_DRIVERS:
        require_driver(*_INDEX_DRIVERS[family], url)
    if scheme == "faiss":
        from prodmatch.stores.faiss_index import FaissIndex

        return FaissIndex(Path(urlsplit(url).path) / f"vectors-{space}.faiss", dims, settings)
    if scheme == "pgvector":
        from prodmatch.stores.pgvector_index import PgVectorIndex

        return PgVectorIndex(url, space, dims, settings)
    if scheme in ("qdrant", "qdrant+https", "qdrant+local"):
        from prodmatch.stores.qdrant_index import QdrantIndex

        return QdrantIndex(url, space, dims, settings)
    if scheme == "milvus":
        from prodmatch.stores.milvus_index import MilvusIndex

        return MilvusIndex(url, space, dims, settings)
    if scheme == "chroma":
        from prodmatch.stores.chroma_index import ChromaIndex

        return ChromaIndex(url, space, dims, settings)
    raise StoreConfigError(f"unsupported vector store URL {url!r}; schemes: {', '.join(VECTOR_SCHEMES)}")

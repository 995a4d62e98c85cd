"""The one place that maps store URLs to MetadataStore / VectorIndex implementations.

Metadata: sqlite:///PATH, postgresql://USER[:PASSWORD]@HOST[:PORT]/DB, mongodb://HOST[:PORT]/DB (mongodb+srv too).
Vectors: faiss:///DIR, pgvector://USER[:PASSWORD]@HOST[:PORT]/DB, qdrant://HOST[:PORT] (qdrant+https:// for TLS),
qdrant+local:///DIR. A query string passes options: ?prefix=NAME puts the tables or collections of one catalog
under NAME (default prodmatch), ?api_key=KEY for Qdrant. Drivers are pip extras, imported only when chosen.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from prodmatch.config import IndexSettings
from prodmatch.errors import StoreConfigError
from prodmatch.stores.protocols import MetadataStore, VectorIndex

METADATA_SCHEMES = ("sqlite", "postgresql", "mongodb")
VECTOR_SCHEMES = ("faiss", "pgvector", "qdrant", "qdrant+https", "qdrant+local")
DEFAULT_PREFIX = "prodmatch"
_DRIVERS = {"postgresql": ("psycopg", "postgres"), "mongodb": ("pymongo", "mongo")}
_INDEX_DRIVERS = {"pgvector": ("pgvector", "pgvector"), "qdrant": ("qdrant_client", "qdrant")}


def scheme_of(url: str) -> str:
    scheme = urlsplit(url).scheme
    if not scheme:
        raise StoreConfigError(f"store URL {url!r} has no scheme (like postgresql://, qdrant://)")
    return scheme


def require_driver(module: str, extra: str, url: str) -> None:
    """Fail with the pip command to run when the driver for URL is not installed."""
    if importlib.util.find_spec(module) is None:
        raise StoreConfigError(
            f"{url.split(':', 1)[0]} stores need the {module!r} package: pip install 'prodmatch[{extra}]'"
        )


def url_option(url: str, name: str, default: str) -> str:
    return parse_qs(urlsplit(url).query).get(name, [default])[0]


def open_metadata_store(url: str) -> MetadataStore:
    """A MetadataStore for URL."""
    scheme = scheme_of(url)
    family = scheme.split("+", 1)[0]
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
    scheme = scheme_of(url)
    family = scheme.split("+", 1)[0]
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
    raise StoreConfigError(f"unsupported vector store URL {url!r}; schemes: {', '.join(VECTOR_SCHEMES)}")

"""VectorIndex on Chroma (chromadb HttpClient): a collection per vector space, inner product over unit vectors
(HNSW), labels as flat metadata, filters pushed into the query as `where` documents (chroma_filters.py).

chroma://HOST[:PORT] (default port 8000) names a Chroma server (`chroma run --path DIR --host H --port P`, or
the chromadb/chroma image). The collection is {prefix}_{space} (Chroma wants 3+ characters); record ids are the
vector ids in decimal. We always send vectors, so no embedding function is configured (none is downloaded).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import chromadb
import httpx
import numpy as np
from chromadb.config import Settings as ChromaSettings

from prodmatch.batching import chunks, spans
from prodmatch.config import IndexSettings
from prodmatch.errors import StoreConfigError, StoreUnavailableError
from prodmatch.stores.chroma_filters import chroma_where, metadata
from prodmatch.stores.protocols import SearchScope
from prodmatch.stores.records import VectorLabel
from prodmatch.stores.urls import prefix_of

DEFAULT_PORT = 8000
_READ_PAGE = 5000


@contextmanager
def reachable(url: str) -> Iterator[None]:
    """chromadb reports a server it cannot reach as a ValueError (at connect) or httpx's transport errors (later):
    both become StoreUnavailableError, which the API answers with 503."""
    try:
        yield
    except httpx.TransportError as exc:
        raise StoreUnavailableError(f"Chroma unavailable at {url}: {exc}") from exc
    except ValueError as exc:
        if "could not connect" not in str(exc).lower():
            raise
        raise StoreUnavailableError(f"Chroma unavailable at {url}: {exc}") from exc


def chroma_client(url: str) -> Any:
    parts = urlsplit(url)
    settings = ChromaSettings(anonymized_telemetry=False)  # no reports sent anywhere
    return chromadb.HttpClient(host=parts.hostname or "localhost", port=parts.port or DEFAULT_PORT, settings=settings)


class ChromaIndex:
    """One vector space's vectors in the collection {prefix}_{space}."""

    def __init__(self, url: str, space: str, dims: int, settings: IndexSettings) -> None:
        self.settings = settings
        self.dims = dims
        self.url = url
        name = f"{prefix_of(url)}_{space}"
        hnsw = {
            "space": "ip",
            "max_neighbors": settings.hnsw_m,
            "ef_construction": settings.hnsw_ef_construction,
            "ef_search": settings.hnsw_ef_search,
        }
        with reachable(url):
            self.client = chroma_client(url)
            self.collection: Any = self.client.get_or_create_collection(
                name, embedding_function=None, configuration={"hnsw": hnsw}
            )
            self._batch = int(self.client.get_max_batch_size())
            self._check_dims()

    def _check_dims(self) -> None:
        sample = self.collection.peek(limit=1)
        embeddings = sample.get("embeddings")
        if embeddings is not None and len(embeddings) and len(embeddings[0]) != self.dims:
            stored = len(embeddings[0])
            raise StoreConfigError(
                f"collection {self.collection.name} holds {stored}-d vectors; this model's are {self.dims}-d"
            )

    @property
    def kind(self) -> str:
        return "chroma-hnsw"

    def __len__(self) -> int:
        with reachable(self.url):
            return int(self.collection.count())

    def ids(self) -> np.ndarray:
        found: list[int] = []
        while True:
            with reachable(self.url):
                page = self.collection.get(include=[], limit=_READ_PAGE, offset=len(found))["ids"]
            found += [int(i) for i in page]
            if len(page) < _READ_PAGE:
                return np.array(sorted(found), dtype=np.int64)

    def add(self, ids: np.ndarray, vectors: np.ndarray, labels: Sequence[VectorLabel]) -> None:
        vectors = np.asarray(vectors, np.float32)
        for span in spans(len(ids), self._batch):
            with reachable(self.url):
                self.collection.upsert(
                    ids=[str(int(i)) for i in ids[span]],
                    embeddings=vectors[span],
                    metadatas=[metadata(label) for label in labels[span]],
                )

    def relabel(self, ids: Sequence[int], labels: Sequence[VectorLabel]) -> None:
        """Metadata is replaced whole, so attributes a product lost stop matching."""
        for span in spans(len(ids), self._batch):
            with reachable(self.url):
                self.collection.update(
                    ids=[str(int(i)) for i in ids[span]], metadatas=[metadata(label) for label in labels[span]]
                )

    def remove(self, ids: Sequence[int]) -> None:
        for chunk in chunks([str(int(i)) for i in ids], self._batch):
            with reachable(self.url):
                self.collection.delete(ids=chunk)

    def search(self, queries: np.ndarray, k: int, scope: SearchScope | None = None) -> tuple[np.ndarray, np.ndarray]:
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        where = chroma_where(scope.filters) if scope else None
        scores = np.full((len(queries), k), -np.inf, np.float32)
        found = np.full((len(queries), k), -1, np.int64)
        with reachable(self.url):
            answer = self.collection.query(query_embeddings=queries, n_results=k, where=where, include=["distances"])
        for row, (hit_ids, distances) in enumerate(zip(answer["ids"], answer["distances"], strict=True)):
            for column, (hit, distance) in enumerate(list(zip(hit_ids, distances, strict=True))[:k]):
                found[row, column], scores[row, column] = int(hit), 1.0 - float(distance)  # "ip" distance: 1 - dot
        return scores, found

    def save(self) -> None:
        """Nothing to do: Chroma has applied every write it acknowledged."""

    def close(self) -> None:
        """Nothing to release: the HTTP client holds no session that needs closing."""

"""VectorIndex on Qdrant (qdrant-client): a collection per vector space, dot-product distance over unit vectors,
labels as payload, filters pushed into the search as payload filters.

qdrant://HOST[:PORT] (qdrant+https:// for TLS) talks to a server; qdrant+local:///DIR runs Qdrant's embedded
local mode in this process (one folder per space: a local folder can be open in one client only, so a server
and an ingest cannot share it; use a server for that). Everything past the client's constructor is the same.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from qdrant_client import QdrantClient, models

from prodmatch.batching import chunks, spans
from prodmatch.config import IndexSettings
from prodmatch.errors import StoreConfigError
from prodmatch.stores.protocols import SearchScope
from prodmatch.stores.qdrant_filters import payload, payload_filter, payload_path
from prodmatch.stores.records import VectorLabel
from prodmatch.stores.urls import prefix_of, url_option

_WRITE_BATCH = 1000
_SCROLL_PAGE = 10_000
SERVER_TIMEOUT_S = 5


def qdrant_client(url: str, space: str) -> QdrantClient:
    parts = urlsplit(url)
    if parts.scheme == "qdrant+local":
        return QdrantClient(path=str(Path(parts.path) / space))
    return QdrantClient(
        host=parts.hostname or "localhost",
        port=parts.port or 6333,
        https=parts.scheme == "qdrant+https",
        api_key=url_option(url, "api_key", "") or None,
        timeout=SERVER_TIMEOUT_S,
    )


class QdrantIndex:
    """One vector space's vectors in the collection {prefix}_{space}."""

    def __init__(self, url: str, space: str, dims: int, settings: IndexSettings) -> None:
        self.settings = settings
        self.client = qdrant_client(url, space)
        self.local = urlsplit(url).scheme == "qdrant+local"
        self.collection = f"{prefix_of(url)}_{space}"
        self._indexed_keys: set[str] = set()
        self._create(dims)

    def _create(self, dims: int) -> None:
        if not self.client.collection_exists(self.collection):
            self.client.create_collection(
                self.collection,
                vectors_config=models.VectorParams(size=dims, distance=models.Distance.DOT),
                hnsw_config=models.HnswConfigDiff(
                    m=self.settings.hnsw_m, ef_construct=self.settings.hnsw_ef_construction
                ),
            )
        info = self.client.get_collection(self.collection)
        params = info.config.params.vectors
        if isinstance(params, models.VectorParams) and params.size != dims:
            raise StoreConfigError(
                f"collection {self.collection} holds {params.size}-d vectors; this model's are {dims}-d"
            )
        self._indexed_keys = set((info.payload_schema or {}).keys())

    @property
    def kind(self) -> str:
        return "qdrant-local" if self.local else "qdrant-hnsw"

    def __len__(self) -> int:
        return int(self.client.count(self.collection, exact=True).count)

    def ids(self) -> np.ndarray:
        found: list[int] = []
        offset: Any = None
        while True:
            points, offset = self.client.scroll(
                self.collection, limit=_SCROLL_PAGE, offset=offset, with_payload=False, with_vectors=False
            )
            found += [int(point.id) for point in points]
            if offset is None:
                return np.array(found, dtype=np.int64)

    def add(self, ids: np.ndarray, vectors: np.ndarray, labels: Sequence[VectorLabel]) -> None:
        self._index_payload(labels)
        vectors = np.asarray(vectors, np.float32)
        for span in spans(len(ids), _WRITE_BATCH):
            batch = models.Batch(
                ids=[int(i) for i in ids[span]],
                vectors=vectors[span].tolist(),
                payloads=[payload(label) for label in labels[span]],
            )
            self.client.upsert(self.collection, points=batch, wait=True)

    def _index_payload(self, labels: Sequence[VectorLabel]) -> None:
        """Payload indexes for filterable keys (server mode; local mode filters by scanning and has none)."""
        if self.local:
            return
        for label in labels:
            for part, schema in (("s", models.PayloadSchemaType.KEYWORD), ("n", models.PayloadSchemaType.FLOAT)):
                for key in label.search.get(part, {}):
                    name = payload_path(part, key)
                    if name not in self._indexed_keys:
                        self.client.create_payload_index(self.collection, name, field_schema=schema, wait=True)
                        self._indexed_keys.add(name)

    def relabel(self, ids: Sequence[int], labels: Sequence[VectorLabel]) -> None:
        by_product: dict[str, tuple[VectorLabel, list[int]]] = {}
        for vector_id, label in zip(ids, labels, strict=True):
            by_product.setdefault(label.product_id, (label, []))[1].append(int(vector_id))
        self._index_payload(labels)
        for label, vector_ids in by_product.values():
            selector = models.PointIdsList(points=list(vector_ids))
            self.client.overwrite_payload(self.collection, payload=payload(label), points=selector, wait=True)

    def remove(self, ids: Sequence[int]) -> None:
        point_ids: list[models.ExtendedPointId] = [int(i) for i in ids]
        for chunk in chunks(point_ids, _WRITE_BATCH):
            self.client.delete(self.collection, points_selector=models.PointIdsList(points=chunk), wait=True)

    def search(self, queries: np.ndarray, k: int, scope: SearchScope | None = None) -> tuple[np.ndarray, np.ndarray]:
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        query_filter = payload_filter(scope.filters) if scope else None
        # local mode searches exhaustively and warns about HNSW parameters
        params = None if self.local else models.SearchParams(hnsw_ef=max(self.settings.hnsw_ef_search, k))
        requests = [
            models.QueryRequest(query=query.tolist(), limit=k, filter=query_filter, params=params, with_payload=False)
            for query in queries
        ]
        scores = np.full((len(queries), k), -np.inf, np.float32)
        found = np.full((len(queries), k), -1, np.int64)
        for row, response in enumerate(self.client.query_batch_points(self.collection, requests=requests)):
            for column, point in enumerate(response.points[:k]):
                found[row, column], scores[row, column] = int(point.id), point.score
        return scores, found

    def save(self) -> None:
        """Nothing to do: upserts wait until Qdrant has applied them."""

    def close(self) -> None:
        with warnings.catch_warnings():  # local mode warns when closed during interpreter shutdown
            warnings.simplefilter("ignore")
            self.client.close()

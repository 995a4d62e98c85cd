"""Sample vectors and labels for the vector-index tests, and the outage-and-recovery check that every remote
vector engine (Milvus, Chroma) must pass."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pytest

from prodmatch.config import IndexSettings
from prodmatch.stores.availability import unavailable_reason
from prodmatch.stores.factory import open_vector_index
from prodmatch.stores.filters import searchable
from prodmatch.stores.protocols import VectorIndex
from prodmatch.stores.records import VectorLabel
from tests.servers import CollectionServer

DIMS = 16
COLOURS = ("red", "blue", "green")


def unit_vectors(n: int, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((n, DIMS)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def labels(n: int) -> list[VectorLabel]:
    """Product p{i} is red, blue or green in turn and costs i."""
    return [VectorLabel(f"p{i}", searchable({"colour": COLOURS[i % 3], "price": i})) for i in range(n)]


def check_outage_and_recovery(
    server: CollectionServer, reason_prefix: str, while_down: Callable[[], None] = lambda: None
) -> None:
    """Fill an index on SERVER and stop the server: a search fails as an outage whose reason starts with
    REASON_PREFIX (the API's 503); WHILE_DOWN runs then. Started again, the same index object answers within a
    minute (the clients reconnect with a back-off)."""
    index = open_vector_index(server.url(), "image", DIMS, IndexSettings())
    vectors = unit_vectors(20)
    index.add(np.arange(20), vectors, labels(20))
    index.save()
    server.stop()
    with pytest.raises(Exception) as raised:
        index.search(vectors[0], 3)
    assert (unavailable_reason(raised.value) or "").startswith(reason_prefix)
    while_down()
    server.start()
    assert answers_again(index, vectors[0], within_s=60)
    index.close()


def answers_again(index: VectorIndex, query: np.ndarray, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            return bool(index.search(query, 1)[1][0, 0] == 0)
        except Exception as exc:  # only outages may happen meanwhile
            assert unavailable_reason(exc) is not None, exc
            time.sleep(0.5)
    return False

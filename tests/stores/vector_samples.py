"""Sample vectors and labels for the vector-index tests, and the checks every remote vector engine (Milvus,
Chroma) must pass: exact neighbours, filters inside the search, outage and recovery."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pytest

from prodmatch.config import IndexSettings
from prodmatch.stores.availability import unavailable_reason
from prodmatch.stores.factory import open_vector_index
from prodmatch.stores.filters import parse_filters, searchable
from prodmatch.stores.protocols import SearchScope, VectorIndex
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


def check_nearest_neighbours(index: VectorIndex, atol: float) -> None:
    """300 vectors written (and saved) with ids from 1000: the exact top 3 of five queries, inner-product scores."""
    vectors = unit_vectors(300)
    index.add(np.arange(300) + 1000, vectors, labels(300))
    index.save()
    assert len(index) == 300 and np.array_equal(index.ids(), np.arange(300) + 1000)
    scores, ids = index.search(vectors[:5], 3)
    expected = np.argsort(-(vectors[:5] @ vectors.T), axis=1)[:, :3] + 1000
    assert np.array_equal(ids, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(vectors[:5] @ vectors.T, expected - 1000, 1), atol=atol)


def check_filters_inside_the_search(index: VectorIndex, engine: str) -> None:
    """Filters run in the engine's own search (the store's id list is never asked for) and follow relabels and
    removals."""
    vectors = unit_vectors(90)
    index.add(np.arange(90), vectors, labels(90))
    scope = SearchScope(parse_filters(["colour=red", "price<30"]), lambda: pytest.fail(f"{engine} filters itself"))
    _, ids = index.search(vectors[3], 20, scope)
    assert set(ids[0][ids[0] >= 0].tolist()) == set(range(0, 30, 3))  # 10 red products under 30
    index.relabel([1], [VectorLabel("p1", searchable({"colour": "red", "price": 1}))])
    index.remove([0, 3])
    _, ids = index.search(vectors[3], 20, scope)
    assert set(ids[0][ids[0] >= 0].tolist()) == {1, *range(6, 30, 3)}
    assert len(index) == 88


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

"""Milvus as a VectorIndex, against milvus-lite's gRPC server on 127.0.0.1 (the Milvus protocol pymilvus speaks):
writes, exact-enough search, filters inside the search, ids, a dimension mismatch, an outage and the recovery."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from prodmatch.config import IndexSettings
from prodmatch.errors import StoreConfigError
from prodmatch.stores.conditions import Not, TextEquals, translate
from prodmatch.stores.factory import open_vector_index
from prodmatch.stores.filters import parse_filters, searchable
from prodmatch.stores.milvus_filters import MilvusBackend, milvus_expression
from prodmatch.stores.milvus_index import MilvusIndex
from prodmatch.stores.protocols import SearchScope
from prodmatch.stores.records import VectorLabel
from tests.stores.milvus_server import MilvusServer
from tests.stores.vector_samples import DIMS, check_outage_and_recovery, labels, unit_vectors


@pytest.fixture
def index(milvus_server: MilvusServer) -> Iterator[MilvusIndex]:
    opened = open_vector_index(milvus_server.url(), "image", DIMS, IndexSettings())
    assert isinstance(opened, MilvusIndex)
    yield opened
    opened.close()


def test_writes_then_finds_the_exact_neighbours(index: MilvusIndex) -> None:
    vectors = unit_vectors(300)
    index.add(np.arange(300) + 1000, vectors, labels(300))
    index.save()
    assert len(index) == 300 and np.array_equal(index.ids(), np.arange(300) + 1000)
    scores, ids = index.search(vectors[:5], 3)
    expected = np.argsort(-(vectors[:5] @ vectors.T), axis=1)[:, :3] + 1000
    assert np.array_equal(ids, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(vectors[:5] @ vectors.T, expected - 1000, 1), atol=1e-5)


def test_filters_run_inside_the_search_and_follow_relabels_and_removals(index: MilvusIndex) -> None:
    vectors = unit_vectors(90)
    index.add(np.arange(90), vectors, labels(90))
    scope = SearchScope(parse_filters(["colour=red", "price<30"]), lambda: pytest.fail("Milvus filters itself"))
    _, ids = index.search(vectors[3], 20, scope)
    assert set(ids[0][ids[0] >= 0].tolist()) == set(range(0, 30, 3))  # 10 red products under 30
    index.relabel([1], [VectorLabel("p1", searchable({"colour": "red", "price": 1}))])
    index.remove([0, 3])
    _, ids = index.search(vectors[3], 20, scope)
    assert set(ids[0][ids[0] >= 0].tolist()) == {1, *range(6, 30, 3)}
    assert len(index) == 88


def test_expressions_test_presence_so_negations_keep_products_without_the_key() -> None:
    # Milvus reads a missing JSON key as NULL and NOT NULL drops the row: each primitive tests presence first
    negated = translate(Not(TextEquals('shoe "size"', "4")), MilvusBackend())
    assert negated == r'(not (exists search["s"]["shoe \"size\""] and search["s"]["shoe \"size\""] == "4"))'
    assert milvus_expression([]) == ""


def test_a_collection_of_other_dimensions_is_refused(milvus_server: MilvusServer) -> None:
    url = milvus_server.url()
    open_vector_index(url, "image", DIMS, IndexSettings()).close()
    with pytest.raises(StoreConfigError, match="16-d vectors; this model's are 8-d"):
        open_vector_index(url, "image", 8, IndexSettings())


def test_a_stopped_server_is_an_outage_and_the_index_recovers_when_it_returns() -> None:
    server = MilvusServer()  # its own server: this test stops it
    try:
        check_outage_and_recovery(server, "Milvus unavailable: ")
    finally:
        server.close()

"""Milvus as a VectorIndex, against milvus-lite's gRPC server on 127.0.0.1 (the Milvus protocol pymilvus speaks):
writes, exact-enough search, filters inside the search, ids, a dimension mismatch, an outage and the recovery."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from prodmatch.config import IndexSettings
from prodmatch.errors import StoreConfigError
from prodmatch.stores.conditions import Not, TextEquals, translate
from prodmatch.stores.factory import open_vector_index
from prodmatch.stores.milvus_filters import MilvusBackend, milvus_expression
from prodmatch.stores.milvus_index import MilvusIndex
from tests.stores.milvus_server import MilvusServer
from tests.stores.vector_samples import (
    DIMS,
    check_filters_inside_the_search,
    check_nearest_neighbours,
    check_outage_and_recovery,
)


@pytest.fixture
def index(milvus_server: MilvusServer) -> Iterator[MilvusIndex]:
    opened = open_vector_index(milvus_server.url(), "image", DIMS, IndexSettings())
    assert isinstance(opened, MilvusIndex)
    yield opened
    opened.close()


def test_writes_then_finds_the_exact_neighbours(index: MilvusIndex) -> None:
    check_nearest_neighbours(index, atol=1e-5)


def test_filters_run_inside_the_search_and_follow_relabels_and_removals(index: MilvusIndex) -> None:
    check_filters_inside_the_search(index, "Milvus")


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

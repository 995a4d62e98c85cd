"""Chroma as a VectorIndex, against the server the chromadb wheel ships (`chroma run`) on 127.0.0.1: writes,
search, `where` filters inside the query (negations keep records without the key), ids, a dimension mismatch, an
outage and the recovery."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from prodmatch.config import IndexSettings
from prodmatch.errors import StoreConfigError
from prodmatch.stores.availability import unavailable_reason
from prodmatch.stores.chroma_filters import _where, chroma_where
from prodmatch.stores.chroma_index import ChromaIndex
from prodmatch.stores.conditions import AnyOf, HasText, Not, NumberCompare, TextEquals
from prodmatch.stores.factory import open_vector_index
from prodmatch.stores.filters import parse_filters
from tests.stores.chroma_server import ChromaServer
from tests.stores.vector_samples import (
    DIMS,
    check_filters_inside_the_search,
    check_nearest_neighbours,
    check_outage_and_recovery,
    labels,
    unit_vectors,
)


@pytest.fixture
def index(chroma_server: ChromaServer) -> Iterator[ChromaIndex]:
    opened = open_vector_index(chroma_server.url(), "image", DIMS, IndexSettings())
    assert isinstance(opened, ChromaIndex)
    yield opened
    opened.close()


def test_writes_then_finds_the_nearest_neighbours_with_inner_product_scores(index: ChromaIndex) -> None:
    check_nearest_neighbours(index, atol=1e-4)


def test_filters_run_inside_the_query_and_follow_relabels_and_removals(index: ChromaIndex) -> None:
    check_filters_inside_the_search(index, "Chroma")


def test_negations_become_where_forms_that_hold_without_the_key() -> None:
    assert chroma_where(parse_filters(["price<30"])) == {"n.price": {"$lt": 30.0}}
    # not (price < 30): price >= 30, or no price at all (the "m." presence marker is absent)
    assert _where(Not(NumberCompare("price", "<", 30)), negated=False) == {
        "$or": [{"n.price": {"$gte": 30.0}}, {"m.price": {"$ne": True}}]
    }
    # De Morgan: not (red or has a size) = not red and has no size
    assert _where(Not(AnyOf((TextEquals("colour", "red"), HasText("size")))), negated=False) == {
        "$and": [{"s.colour": {"$ne": "red"}}, {"h.size": {"$ne": True}}]
    }
    assert chroma_where([]) is None


def test_a_collection_of_other_dimensions_is_refused(chroma_server: ChromaServer) -> None:
    url = chroma_server.url()
    first = open_vector_index(url, "image", DIMS, IndexSettings())
    first.add(np.arange(2), unit_vectors(2), labels(2))
    with pytest.raises(StoreConfigError, match="16-d vectors; this model's are 8-d"):
        open_vector_index(url, "image", 8, IndexSettings())


def test_a_stopped_server_is_an_outage_and_the_index_recovers_when_it_returns() -> None:
    server = ChromaServer()  # its own server: this test stops it

    def opening_is_an_outage_too() -> None:
        with pytest.raises(Exception) as opening:
            open_vector_index(server.url(), "image", DIMS, IndexSettings())
        assert (unavailable_reason(opening.value) or "").startswith("Chroma unavailable at ")

    try:
        check_outage_and_recovery(server, "Chroma unavailable at ", while_down=opening_is_an_outage_too)
    finally:
        server.close()

"""What filters mean, once: every operator on text, numeric text, numbers, booleans and missing keys, written out
as the products each filter selects. The Python reference (conditions.holds) must select them, and so must every
backend's translation, run by a real store: SQL on SQLite and PostgreSQL (containment), MongoDB query documents,
pgvector (SQL on its own table) and Qdrant payload filters."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import pytest

from prodmatch.config import IndexSettings
from prodmatch.errors import FilterError
from prodmatch.stores.conditions import AllOf, AnyOf, Condition, HasText, Not, NumberCompare, NumberEquals, TextEquals
from prodmatch.stores.conditions import holds as reference_holds
from prodmatch.stores.factory import open_metadata_store, open_vector_index
from prodmatch.stores.filters import Filter, condition_of, parse_filter, parse_filters, searchable
from prodmatch.stores.protocols import SearchScope
from prodmatch.stores.records import ImageRef, Product, ProductUpsert, SpaceVectors, VectorLabel
from tests.conftest import StoreUrl

DIMS = 4
PRODUCTS: dict[str, dict[str, object]] = {
    "a": {"colour": "Red", "size": "M", "price": 10, "year": "2012", "on_sale": True, "rating": 4.5},
    "b": {"colour": "red", "size": "10", "price": 25.5, "year": 2013, "on_sale": False},
    "c": {"colour": "Blue", "price": "40", "year": "2012.0", "rating": "n/a"},
    "d": {"colour": "NaN", "size": "l", "price": -3},
    "e": {"code": "007", "on_sale": "TRUE"},
    "f": {"colour": 5, "price": 0, "tags": ["x"], "dims": {"w": 1}, "note": None},
    "g": {"colour": "Inf", "price": "1e3", "code": "7"},
}
# (filters, the products they select): the specification every backend is held to
CASES: list[tuple[list[str], set[str]]] = [
    (["colour=red"], {"a", "b"}),
    (["colour = RED "], {"a", "b"}),
    (["colour!=red"], {"c", "d", "f", "g"}),
    (["colour=5"], {"f"}),
    (["colour!=5"], {"a", "b", "c", "d", "g"}),  # a text that is no number is not equal to one
    (["colour=nan"], {"d"}),  # "nan" and "inf" are only text
    (["colour!=NaN"], {"a", "b", "c", "f", "g"}),
    (["colour=inf"], {"g"}),
    (["colour>=0"], {"f"}),
    (["size=m"], {"a"}),
    (["size!=m"], {"b", "d"}),
    (["size>=5"], {"b"}),
    (["price=10"], {"a"}),
    (["price=10.0"], {"a"}),
    (["price=25.50"], {"b"}),
    (["price=40"], {"c"}),
    (["price=1000"], {"g"}),
    (["price=1e3"], {"g"}),
    (["price!=10"], {"b", "c", "d", "f", "g"}),
    (["price>=10"], {"a", "b", "c", "g"}),
    (["price>10"], {"b", "c", "g"}),
    (["price<=0"], {"d", "f"}),
    (["price<0"], {"d"}),
    (["price>-5"], {"a", "b", "c", "d", "f", "g"}),
    (["year=2012"], {"a", "c"}),
    (["year!=2012"], {"b"}),
    (["year>2012"], {"b"}),
    (["year<2013"], {"a", "c"}),
    (["on_sale=true"], {"a", "e"}),
    (["on_sale=TRUE"], {"a", "e"}),
    (["on_sale!=true"], {"b"}),
    (["on_sale=false"], {"b"}),
    (["on_sale=1"], set()),  # booleans are words, not numbers
    (["on_sale>=0"], set()),
    (["code=7"], {"e", "g"}),
    (["code=007"], {"e", "g"}),
    (["code!=7"], set()),
    (["rating>4"], {"a"}),
    (["rating=n/a"], {"c"}),
    (["rating!=4.5"], {"c"}),
    (["missing=x"], set()),
    (["missing!=x"], set()),
    (["missing>=0"], set()),
    (["tags=x"], set()),  # lists, objects and nulls are not filterable
    (["tags!=y"], set()),
    (["note!=x"], set()),
    (["colour=red", "price>20"], {"b"}),
    (["on_sale=true", "year=2012"], {"a"}),
    (["colour!=red", "price<=0"], {"d", "f"}),
]
Select = Callable[[list[Filter]], set[str]]


def upserts() -> list[ProductUpsert]:
    items = []
    for position, (pid, attributes) in enumerate(PRODUCTS.items()):
        image = ImageRef(f"{pid}.jpg", f"sha-{pid}")
        vectors = [SpaceVectors("image", np.eye(DIMS, dtype=np.float32)[[position % DIMS]], [image.sha256])]
        items.append(ProductUpsert(Product(pid, pid, pid, dict(attributes), [image], pid, pid), vectors))
    return items


@contextmanager
def metadata_store(url: str) -> Iterator[Select]:
    """Selection by a metadata store: its page, count and vector ids must agree."""
    store = open_metadata_store(url)
    store.upsert(upserts())

    def select(filters: list[Filter]) -> set[str]:
        found = {product.id for product in store.page(0, 100, filters)}
        assert store.count(filters) == len(found), filters
        owners = store.vector_owners(store.vector_ids("image", filters).tolist())
        assert set(owners.values()) == found, filters
        return found

    try:
        yield select
    finally:
        store.close()


def refuse_allowed_ids() -> np.ndarray:
    raise AssertionError("an index that keeps labels must filter inside its own search")


@contextmanager
def vector_index(url: str) -> Iterator[Select]:
    """Selection by a vector index's own filtered search (all products asked for)."""
    index = open_vector_index(url, "image", DIMS, IndexSettings())
    owners = list(PRODUCTS)
    vectors = np.eye(DIMS, dtype=np.float32)[[i % DIMS for i in range(len(owners))]]
    index.add(np.arange(len(owners)), vectors, [VectorLabel(pid, searchable(PRODUCTS[pid])) for pid in owners])

    def select(filters: list[Filter]) -> set[str]:
        query = np.full(DIMS, 0.5, np.float32)
        _scores, found = index.search(query, len(owners) + 2, SearchScope(filters, refuse_allowed_ids))
        return {owners[i] for i in found[0].tolist() if i >= 0}

    try:
        yield select
    finally:
        index.close()


@contextmanager
def reference() -> Iterator[Select]:
    yield lambda filters: {
        pid for pid, attributes in PRODUCTS.items() if reference_holds(condition_of(filters), searchable(attributes))
    }


@contextmanager
def backend(kind: str, store_url: StoreUrl) -> Iterator[Select]:
    if kind == "python":
        with reference() as select:
            yield select
    elif kind in ("pgvector", "qdrant+local", "milvus", "chroma"):
        with vector_index(store_url(kind)) as select:
            yield select
    else:
        with metadata_store(store_url(kind)) as select:
            yield select


@pytest.mark.parametrize(
    "kind", ["python", "sqlite", "postgresql", "mongodb", "pgvector", "qdrant+local", "milvus", "chroma"]
)
def test_every_backend_selects_what_each_filter_means(kind: str, store_url: StoreUrl) -> None:
    with backend(kind, store_url) as select:
        selected = {str(expressions): select(parse_filters(expressions)) for expressions, _ in CASES}
    wrong = {
        str(expressions): (sorted(selected[str(expressions)]), sorted(expected))
        for expressions, expected in CASES
        if selected[str(expressions)] != expected
    }
    assert not wrong, wrong  # filters: (selected, expected)


def kinds_in(condition: Condition) -> set[type]:
    children: tuple[Condition, ...] = ()
    if isinstance(condition, AnyOf | AllOf):
        children = condition.parts
    elif isinstance(condition, Not):
        children = (condition.part,)
    return {type(condition)}.union(*(kinds_in(child) for child in children))


def test_the_cases_exercise_every_kind_of_condition() -> None:
    """So that a backend passing the table above has translated every primitive and combinator."""
    seen = set().union(*(kinds_in(parse_filter(text).condition) for expressions, _ in CASES for text in expressions))
    assert seen == {TextEquals, NumberEquals, NumberCompare, HasText, AnyOf, AllOf, Not}


def test_filters_lower_to_the_documented_conditions() -> None:
    assert parse_filter("Colour=Red").condition == TextEquals("Colour", "red")
    assert parse_filter("year=2012").condition == AnyOf((TextEquals("year", "2012"), NumberEquals("year", 2012.0)))
    assert parse_filter("size!=m").condition == AllOf((HasText("size"), Not(TextEquals("size", "m"))))
    assert parse_filter("price<9.5").condition == NumberCompare("price", "<", 9.5)
    assert condition_of([]) is None


@pytest.mark.parametrize("expression", ["price>=nan", "price<inf", "price>cheap"])
def test_comparisons_need_a_finite_number(expression: str) -> None:
    with pytest.raises(FilterError, match="needs a number"):
        parse_filter(expression)


def test_a_filter_made_without_parsing_is_checked_when_lowered() -> None:
    with pytest.raises(FilterError, match="needs a number"):
        Filter("price", ">=", "cheap").condition  # noqa: B018

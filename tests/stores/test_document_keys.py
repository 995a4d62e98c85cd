"""Attribute keys that mean something in a document path ('.', '$', and '%', the escape character) or in Qdrant's
path syntax (spaces, quotes, brackets) are stored and filtered like any other key, through the real stores."""

from __future__ import annotations

import numpy as np
import pytest

from prodmatch.config import IndexSettings
from prodmatch.stores.factory import open_metadata_store, open_vector_index
from prodmatch.stores.filters import field_key, parse_filters, searchable
from prodmatch.stores.protocols import SearchScope
from prodmatch.stores.qdrant_filters import payload_path
from prodmatch.stores.records import ImageRef, Product, ProductUpsert, SpaceVectors, VectorLabel
from tests.conftest import StoreUrl

ATTRIBUTES: dict[str, dict[str, object]] = {
    "p1": {
        "size.eu": "42",
        "$price": 7,
        "50%off": True,
        "a%2Eb": "escaped-look",
        "shoe size": "9",
        "fit[0]": "slim",
        "length, cm": 20,
    },
    "p2": {
        "size.eu": "43",
        "$price": 12,
        "50%off": False,
        "a.b": "dotted",
        "shoe size": "10",
        "fit[0]": "loose",
        "length, cm": 30,
    },
}
# a.b and a%2Eb would be one stored field if "%" were not escaped too: each must see only its own product
CASES = [
    (["size.eu=42"], ["p1"]),
    (["size.eu>42"], ["p2"]),
    (["$price<10"], ["p1"]),
    (["$price!=7"], ["p2"]),
    (["50%off=true"], ["p1"]),
    (["a.b=dotted"], ["p2"]),
    (["a.b!=escaped-look"], ["p2"]),
    (["a%2Eb=escaped-look"], ["p1"]),
    (["a%2Eb!=dotted"], ["p1"]),
    (["shoe size>=10"], ["p2"]),
    (["fit[0]=slim"], ["p1"]),
    (["length, cm>25"], ["p2"]),
    (["length, cm!=30"], ["p1"]),
]
QUOTED = {"p1": {'say "hi"': "yes", "back\\slash": 1}, "p2": {'say "hi"': "no", "back\\slash": 2}}
QUOTED_CASES = [
    (['say "hi"=yes'], ["p1"]),
    (['say "hi"!=yes'], ["p2"]),
    (["back\\slash>1"], ["p2"]),
    (["back\\slash=2"], ["p2"]),
    (["back\\slash!=2"], ["p1"]),
]


def upsert(pid: str, attributes: dict[str, object]) -> ProductUpsert:
    image = ImageRef(f"{pid}.jpg", f"sha-{pid}")
    vectors = [SpaceVectors("image", np.ones((1, 4), np.float32) / 2, [image.sha256])]
    return ProductUpsert(Product(pid, pid, pid, attributes, [image], pid, pid), vectors)


@pytest.mark.parametrize("kind", ["mongodb", "sqlite", "postgresql"])
def test_metadata_stores_keep_and_filter_path_like_keys(kind: str, store_url: StoreUrl) -> None:
    attributes = {pid: {**ATTRIBUTES[pid], **QUOTED[pid]} for pid in ATTRIBUTES}
    cases = CASES + QUOTED_CASES
    store = open_metadata_store(store_url(kind))
    try:
        store.upsert([upsert(pid, values) for pid, values in attributes.items()])
        assert {pid: p.attributes for pid, p in store.get(list(attributes)).items()} == attributes
        assert store.attribute_keys() == {key for values in attributes.values() for key in values}
        seen = {str(filters): [p.id for p in store.page(0, 10, parse_filters(filters))] for filters, _ in cases}
        store.upsert([ProductUpsert(upsert("p1", attributes["p2"]).product, None)])  # metadata only: p1 now p2's
        after = [p.id for p in store.page(0, 10, parse_filters(["size.eu=43", "a.b=dotted"]))]
    finally:
        store.close()
    assert seen == {str(filters): expected for filters, expected in cases}
    assert after == ["p1", "p2"]


def test_qdrant_keeps_and_filters_path_like_keys(store_url: StoreUrl) -> None:
    labels = [VectorLabel(pid, searchable({**ATTRIBUTES[pid], **QUOTED[pid]})) for pid in ATTRIBUTES]
    index = open_vector_index(store_url("qdrant+local"), "image", 4, IndexSettings())

    def select(filters: list[str]) -> list[str]:
        scope = SearchScope(parse_filters(filters), lambda: np.zeros(0, np.int64))
        found = index.search(np.ones(4, np.float32) / 2, 5, scope)[1][0]
        return sorted(labels[i].product_id for i in found.tolist() if i >= 0)

    try:
        index.add(np.arange(2), np.eye(4, dtype=np.float32)[:2], labels)
        seen = {str(filters): select(filters) for filters, _ in CASES + QUOTED_CASES}
        index.relabel([0], [VectorLabel("p1", labels[1].search)])  # p1 now has p2's attributes
        after = select(["size.eu=43", "a.b=dotted"])
    finally:
        index.close()
    assert seen == {str(filters): expected for filters, expected in CASES + QUOTED_CASES}
    assert after == ["p1", "p2"]


def test_escaping_is_one_to_one() -> None:
    keys = ["a.b", "a%2Eb", "a%252Eb", "$x", "%24x", 'q"', "q%22", "b\\", "b%5C", "plain"]
    assert len({field_key(key) for key in keys}) == len(keys)
    assert all("." not in field_key(key) and "$" not in field_key(key) for key in keys)
    assert len({payload_path("s", key) for key in keys}) == len(keys)
    assert payload_path("s", "colour") == "s.colour"  # bare where Qdrant allows: existing payload indexes match
    assert payload_path("n", "shoe size") == 'n."shoe size"'

"""A batch upsert on every metadata store: the vector changes it reports name the right vectors for the indexes
(each added id is the vector of the product that owns it), a batch mixing new, re-embedded and metadata-only
products does what each asks, and the last write of an id in a batch wins."""

from __future__ import annotations

import numpy as np
import pytest

from prodmatch.stores.factory import open_metadata_store
from prodmatch.stores.filters import searchable
from prodmatch.stores.protocols import MetadataStore
from prodmatch.stores.records import ImageRef, Product, ProductUpsert, SpaceVectors, VectorLabel
from tests.conftest import StoreUrl

KINDS = ["sqlite", "postgresql", "mongodb"]


def item(pid: str, colour: str, rng: np.random.Generator, photos: int = 1) -> ProductUpsert:
    images = [ImageRef(f"{pid}-{n}.jpg", f"sha-{pid}-{n}-{colour}") for n in range(photos)]
    product = Product(pid, pid, pid, {"colour": colour}, images, f"{pid}{colour}", f"{pid}{colour}")
    vectors = [
        SpaceVectors("image", rng.standard_normal((photos, 8)).astype(np.float32), [i.sha256 for i in images]),
        SpaceVectors("text", rng.standard_normal((1, 4)).astype(np.float32)),
    ]
    return ProductUpsert(product, vectors)


def stored_vector(store: MetadataStore, vector_id: int, space: str, owner: str, row: np.ndarray) -> bool:
    _owners, vectors = store.product_vectors([owner], space)
    return any(np.array_equal(v, row) for v in vectors) and store.vector_owners([vector_id]) == {vector_id: owner}


@pytest.mark.parametrize("kind", KINDS)
def test_a_batch_reports_each_added_vector_with_its_own_id(kind: str, store_url: StoreUrl) -> None:
    rng = np.random.default_rng(0)
    items = [item(f"p{n:03d}", "red", rng, photos=1 + n % 3) for n in range(60)]
    store = open_metadata_store(store_url(kind))
    try:
        changes = store.upsert(items)
        for space in ("image", "text"):
            ids, vectors = changes.added[space]
            assert len(ids) == len(set(ids.tolist())) == len(vectors)
            owners = store.vector_owners(ids.tolist())
            # the indexes get (id, vector) pairs: a vector under another product's id would answer wrongly
            pairs = zip(ids.tolist(), vectors, strict=True)
            assert all(stored_vector(store, i, space, owners[i], v) for i, v in pairs)
            assert {changes.labels[int(i)].product_id for i in ids} == {it.product.id for it in items}
        assert len(changes.added["image"][0]) == sum(1 + n % 3 for n in range(60))
    finally:
        store.close()


@pytest.mark.parametrize("kind", KINDS)
def test_a_mixed_batch_replaces_relabels_and_adds(kind: str, store_url: StoreUrl) -> None:
    rng = np.random.default_rng(1)
    store = open_metadata_store(store_url(kind))
    try:
        store.upsert([item("a", "red", rng), item("b", "red", rng)])
        old = {pid: store.product_vectors([pid], "image")[1] for pid in ("a", "b")}
        a_ids = set(store.vector_ids("image").tolist())
        kept_b = ProductUpsert(item("b", "blue", rng).product, None)  # metadata only: vectors kept
        twice = [item("c", "red", rng), item("c", "green", rng, photos=2)]  # the second write of c wins
        changes = store.upsert([item("a", "blue", rng), kept_b, *twice])
        products = store.get(["a", "b", "c"])
        assert {pid: p.attributes["colour"] for pid, p in products.items()} == {"a": "blue", "b": "blue", "c": "green"}
        assert len(products["c"].images) == 2 and len(store.product_vectors(["c"], "image")[1]) == 2
        assert not np.array_equal(store.product_vectors(["a"], "image")[1], old["a"])  # re-embedded
        assert np.array_equal(store.product_vectors(["b"], "image")[1], old["b"])  # kept
        assert set(changes.removed["image"]) < a_ids and len(changes.removed["image"]) == 1
        (b_vector,) = changes.relabelled["image"]
        assert changes.labels[b_vector] == VectorLabel("b", searchable({"colour": "blue"}))  # filters follow
        assert len(changes.added["image"][0]) == 3  # a's one photo and c's two (not the overwritten c's)
        assert store.count() == 3 and len(store.vector_ids("image")) == 4
    finally:
        store.close()


@pytest.mark.parametrize("kind", KINDS)
def test_the_catalog_stamp_changes_with_every_write_and_delete(kind: str, store_url: StoreUrl) -> None:
    """What the saved lexical index is checked against: any upsert or delete makes a new stamp, reads do not."""
    rng = np.random.default_rng(1)
    store = open_metadata_store(store_url(kind))
    try:
        stamps = [store.catalog_stamp()]
        store.upsert([item("s1", "red", rng), item("s2", "red", rng)])
        stamps.append(store.catalog_stamp())
        store.get(["s1"]), store.page(0, 10), store.count()
        assert store.catalog_stamp() == stamps[-1]
        store.upsert([item("s1", "blue", rng)])  # an edit: the count stays, the latest write moves
        stamps.append(store.catalog_stamp())
        store.delete("s2")
        stamps.append(store.catalog_stamp())
        assert len(set(stamps)) == 4, stamps
    finally:
        store.close()

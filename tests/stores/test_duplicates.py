"""Duplicate listings in every metadata store: products listing one image file, and near copies (the same photo
saved as another file) linked from nearest-neighbour pairs, merged into groups."""

from __future__ import annotations

import numpy as np
import pytest

from prodmatch.stores.factory import open_metadata_store
from prodmatch.stores.records import ImageRef, Product, ProductUpsert, SpaceVectors
from tests.conftest import StoreUrl

PHOTO = bytes(range(256)) * 3  # a 16x16x3 signature
SHIFTED = {step: bytes(min(255, level + step) for level in PHOTO) for step in (1, 2)}
# product: (image sha, signature)
LISTINGS: dict[str, tuple[str, bytes | None]] = {
    "a": ("s1", PHOTO),
    "b": ("s1", PHOTO),  # the same file as a
    "c": ("s2", SHIFTED[1]),  # a re-saved copy of a's photo
    "f": ("s5", SHIFTED[2]),  # a copy of c's (1 level away), too far from a's (2)
    "d": ("s3", bytes(len(PHOTO))),  # another photo
    "e": ("s4", None),  # no signature: never linked
    "g": ("s6", None),
    "h": ("s6", None),  # the same file as g
}


def listing(pid: str) -> ProductUpsert:
    sha, signature = LISTINGS[pid]
    image = ImageRef(f"{pid}.jpg", sha, signature)
    vectors = [SpaceVectors("image", np.eye(4, dtype=np.float32)[:1], [sha])]
    return ProductUpsert(Product(pid, pid, pid, {}, [image], pid, pid), vectors)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "mongodb"])
def test_duplicate_groups_merge_shared_files_and_linked_copies(kind: str, store_url: StoreUrl) -> None:
    store = open_metadata_store(store_url(kind))
    try:
        store.upsert([listing(pid) for pid in LISTINGS])
        exact = store.duplicate_groups(include_near=False)
        vector = {owner: vid for vid, owner in store.vector_owners(store.vector_ids("image").tolist()).items()}
        pairs = [("c", "a"), ("a", "b"), ("d", "a"), ("e", "a"), ("f", "a"), ("f", "c"), ("c", "a")]
        linked = store.link_near_duplicates([(vector[x], vector[y]) for x, y in pairs], max_difference=1.5)
        again = store.link_near_duplicates([(vector["a"], vector["c"])], max_difference=1.5)
        groups, still_exact = store.duplicate_groups(), store.duplicate_groups(include_near=False)
    finally:
        store.close()
    assert exact == still_exact == [["a", "b"], ["g", "h"]]
    assert (linked, again) == (2, 0)  # c~a and f~c; a~b is one file, d differs, e has no signature, f~a is too far
    assert groups == [["a", "b", "c", "f"], ["g", "h"]]

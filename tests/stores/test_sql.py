"""SQL metadata store (SQLite here, same code for PostgreSQL): upserts, filters, cascades."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from prodmatch.errors import FilterError
from prodmatch.stores.filters import Filter, check_keys, parse_filter
from prodmatch.stores.records import ImageRef, Product, ProductUpsert, SpaceVectors
from prodmatch.stores.sql import SqlMetadataStore


def product(pid: str, colour: str, price: float) -> ProductUpsert:
    images = [ImageRef(f"{pid}.jpg", f"sha-{pid}")]
    item = Product(pid, f"Product {pid}", f"Product {pid}", {"colour": colour, "price": price}, images, pid, pid)
    vectors = [
        SpaceVectors("image", np.eye(4, dtype=np.float32)[:1], [images[0].sha256]),
        SpaceVectors("text", np.eye(4, dtype=np.float32)[1:2]),
    ]
    return ProductUpsert(item, vectors)


@pytest.fixture
def store(tmp_path: Path) -> SqlMetadataStore:
    store = SqlMetadataStore(f"sqlite:///{tmp_path / 'm.db'}")
    store.upsert([product("a", "Red", 10), product("b", "red", 25.5), product("c", "Blue", 40)])
    return store


def test_upsert_returns_the_vector_changes(store: SqlMetadataStore) -> None:
    changes = store.upsert([product("a", "Green", 11)])
    assert set(changes.removed) == {"image", "text"} and len(changes.added["image"][0]) == 1
    assert store.get(["a"])["a"].attributes == {"colour": "Green", "price": 11}
    assert store.count() == 3 and len(store.vector_ids("image")) == 3


def test_metadata_only_upsert_keeps_vectors(store: SqlMetadataStore) -> None:
    before = store.vector_ids("image").tolist()
    changes = store.upsert([ProductUpsert(product("a", "Red", 12).product, None)])
    assert changes.added == {} and changes.removed == {}
    assert store.vector_ids("image").tolist() == before


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("colour=red", ["a", "b"]),
        ("colour!=RED", ["c"]),
        ("price>=25.5", ["b", "c"]),
        ("price<25.5", ["a"]),
        ("price=40", ["c"]),
        ("price>100", []),
    ],
)
def test_filters_run_in_sql(store: SqlMetadataStore, expression: str, expected: list[str]) -> None:
    found = [p.id for p in store.page(0, 10, [parse_filter(expression)])]
    assert found == expected
    assert store.count([parse_filter(expression)]) == len(expected)
    owners = store.vector_owners(store.vector_ids("image", [parse_filter(expression)]).tolist())
    assert sorted(owners.values()) == expected


def test_bad_filters_are_clear_errors(store: SqlMetadataStore) -> None:
    with pytest.raises(FilterError, match="needs a number"):
        parse_filter("price>=cheap")
    with pytest.raises(FilterError, match="expected KEY=VALUE"):
        parse_filter("colour")
    with pytest.raises(FilterError, match="filterable keys: colour, price"):
        check_keys([Filter("size", "=", "M")], store.attribute_keys())


def test_delete_cascades_to_images_and_vectors(store: SqlMetadataStore) -> None:
    changes = store.delete("a")
    assert len(changes.removed["image"]) == 1 and store.count() == 2
    assert "a" not in store.vector_owners(changes.removed["image"]).values()
    assert store.product_vectors(["a"], "text")[0] == []


def test_meta_round_trips_json(store: SqlMetadataStore) -> None:
    store.set_meta("model", {"name": "x", "spaces": {"image": 4}})
    assert store.get_meta("model") == {"name": "x", "spaces": {"image": 4}}
    assert store.get_meta("missing") is None


def test_a_batch_upsert_reads_its_products_in_one_query_not_one_each(store: SqlMetadataStore) -> None:
    from sqlalchemy import event

    store.upsert([product(f"p{i}", "Red", i) for i in range(40)])
    product_reads: list[str] = []

    def remember(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().startswith("SELECT") and "FROM products" in statement.replace('"', ""):
            product_reads.append(statement)

    event.listen(store.engine, "before_cursor_execute", remember)
    store.upsert([product(f"p{i}", "Blue", i) for i in range(40)])  # 40 stored products, changed
    event.remove(store.engine, "before_cursor_execute", remember)
    assert 1 <= len(product_reads) <= 2, product_reads  # before: one SELECT per product
    assert {p.attributes["colour"] for p in store.get([f"p{i}" for i in range(40)]).values()} == {"Blue"}
    assert len(store.vector_ids("image")) == 43


def test_a_batch_upsert_replaces_old_vectors_and_adds_new_products_in_one_pass(store: SqlMetadataStore) -> None:
    old = {space: set(store.vector_ids(space).tolist()) for space in ("image", "text")}
    statements: list[str] = []

    def remember(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(" ".join(statement.split()).replace('"', ""))

    from sqlalchemy import event

    event.listen(store.engine, "before_cursor_execute", remember)
    changes = store.upsert([product("a", "Green", 11), *(product(f"n{i}", "Red", i) for i in range(20))])
    event.remove(store.engine, "before_cursor_execute", remember)
    # a's two old vectors are reported removed (the indexes drop them) and gone from the table; 21 x 2 added
    a_vectors = {space: {i for i in old[space] if store.vector_owners([i]).get(i) == "a"} for space in old}
    assert all(not vectors for vectors in a_vectors.values())
    assert {space: len(ids) for space, ids in changes.removed.items()} == {"image": 1, "text": 1}
    assert all(set(ids) <= old[space] for space, ids in changes.removed.items())
    assert {space: len(ids) for space, (ids, _v) in changes.added.items()} == {"image": 21, "text": 21}
    assert store.count() == 23 and len(store.vector_ids("image")) == len(store.vector_ids("text")) == 23
    assert store.get(["a"])["a"].attributes["colour"] == "Green" and store.get(["n7"])["n7"].name == "Product n7"
    # one DELETE of old vectors for the batch, not one per product; no per-product lookup of the new ones
    assert sum(s.startswith("DELETE FROM vectors") for s in statements) == 1
    assert sum(s.startswith("SELECT") and "FROM products" in s for s in statements) <= 2


def test_a_batch_naming_one_product_twice_keeps_the_last(store: SqlMetadataStore) -> None:
    changes = store.upsert([product("z", "Red", 1), product("z", "Blue", 2)])
    assert store.get(["z"])["z"].attributes == {"colour": "Blue", "price": 2}
    assert len(store.product_vectors(["z"], "image")[0]) == 1 and store.count() == 4
    # the first copy never reaches the table: nothing of it to remove, one vector per space added
    assert not changes.removed.get("image") and len(changes.added["image"][0]) == 1


def test_a_batch_upsert_costs_the_same_statements_for_40_products_as_for_10(store: SqlMetadataStore) -> None:
    from sqlalchemy import event

    statements: list[str] = []

    def remember(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    counts = []
    event.listen(store.engine, "before_cursor_execute", remember)
    for size, first in ((10, 100), (40, 200)):
        before = len(statements)
        store.upsert([product(f"q{first + i}", "Red", i) for i in range(size)])  # new products
        store.upsert([product(f"q{first + i}", "Blue", i) for i in range(size)])  # all re-embedded
        counts.append(len(statements) - before)
    event.remove(store.engine, "before_cursor_execute", remember)
    assert counts[0] == counts[1], counts  # before: several statements per product (15 ms a product)
    assert {p.attributes["colour"] for p in store.get([f"q{200 + i}" for i in range(40)]).values()} == {"Blue"}
    assert len(store.vector_ids("image")) == 3 + 10 + 40


def test_two_writers_on_one_sqlite_file_never_share_a_vector_id(tmp_path: Path) -> None:
    """SQLite's vector ids are chosen by the store (one past the largest) inside the write transaction: two
    processes' stores writing at once (an ingest beside a server) must still get distinct, correct ids."""
    import threading

    url = f"sqlite:///{tmp_path / 'm.db'}"
    stores = {prefix: SqlMetadataStore(url) for prefix in ("x", "y")}  # opened (migrated) before the race
    reported: dict[int, str] = {}
    failures: list[BaseException] = []
    lock = threading.Lock()

    def write(prefix: str) -> None:
        try:
            for batch in range(15):
                changes = stores[prefix].upsert([product(f"{prefix}{batch}-{i}", "Red", i) for i in range(5)])
                with lock:
                    assert not set(changes.labels) & set(reported)
                    reported.update({vid: label.product_id for vid, label in changes.labels.items()})
        except BaseException as exc:  # a thread's failure must fail the test
            failures.append(exc)

    writers = [threading.Thread(target=write, args=(prefix,)) for prefix in stores]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    assert not failures, failures
    assert len(reported) == 2 * 15 * 5 * 2  # two vectors (image, text) per product
    assert stores["x"].vector_owners(list(reported)) == reported
    for store in stores.values():
        store.close()


def test_a_deleted_products_vector_ids_are_never_handed_out_again(store: SqlMetadataStore) -> None:
    """The newest product holds the highest vector ids; deleted, its ids must not go to the next product (a
    process still caching "id -> product" would name the deleted one)."""
    store.upsert([product("newest", "Red", 1)])
    newest = {space: int(store.vector_ids(space).max()) for space in ("image", "text")}
    store.delete("newest")
    changes = store.upsert([product("next", "Blue", 2)])
    assert all(int(min(ids)) > max(newest.values()) for ids, _vectors in changes.added.values())

"""Alembic migrations: a database at the first schema, or made before migrations existed, is upgraded on open to
the newest revision (searchable attributes, then query ids, feedback and API keys) with its data kept and
filterable."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import inspect, text

from prodmatch.stores.filters import parse_filters
from prodmatch.stores.migrations import upgrade
from prodmatch.stores.sql import SqlMetadataStore
from prodmatch.stores.sql_engine import make_engine
from tests.conftest import StoreUrl


def first_schema_with_a_product(url: str, forget_versions: bool) -> None:
    """The database as the first release left it: revision 0001 and one product without `search`."""
    engine = make_engine(url)
    upgrade(engine, "0001")
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO products (id, name, text, attributes, content_hash, embed_hash, updated_at) "
                "VALUES ('p1', 'Blue shirt', 'blue shirt', :attributes, 'c', 'e', :now)"
            ),
            {"attributes": '{"colour": "Blue", "price": 25}', "now": datetime.now(UTC)},
        )
        if forget_versions:  # made before Alembic: tables but no alembic_version
            connection.execute(text("DROP TABLE alembic_version"))
    engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
@pytest.mark.parametrize("forget_versions", [False, True], ids=["at-0001", "before-alembic"])
def test_old_databases_are_upgraded_and_keep_their_products(
    kind: str, forget_versions: bool, store_url: StoreUrl
) -> None:
    url = store_url(kind)
    first_schema_with_a_product(url, forget_versions)
    store = SqlMetadataStore(url)
    try:
        schema = inspect(store.engine)
        assert "search" in {c["name"] for c in schema.get_columns("products")}
        assert {"query_id", "request_id", "photo_sha"} <= {c["name"] for c in schema.get_columns("query_log")}
        assert {"feedback", "api_keys"} <= set(schema.get_table_names())
        assert "source_url" in {c["name"] for c in schema.get_columns("product_images")}
        with store.engine.connect() as connection:
            assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == "0005"
        assert [p.id for p in store.page(0, 10, parse_filters(["colour=blue", "price<30"]))] == ["p1"]
        assert store.count(parse_filters(["colour=red"])) == 0
    finally:
        store.close()


def test_sqlite_vector_ids_are_never_reused_after_the_upgrade(tmp_path: object) -> None:
    """A database from before 0005 had vector ids 1..3; after the upgrade, deleting the highest id and adding a
    row gives a new id, not 3 again."""
    url = f"sqlite:///{tmp_path}/old.db"
    engine = make_engine(url)
    upgrade(engine, "0004")
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO products (id, name, text, attributes, search, content_hash, embed_hash, updated_at) "
                "VALUES ('p1', 'n', 't', '{}', '{}', 'c', 'e', :now)"
            ),
            {"now": datetime.now(UTC)},
        )
        for _ in range(3):
            connection.execute(text("INSERT INTO vectors (product_id, space, vector) VALUES ('p1', 'image', x'00')"))
    upgrade(engine)
    with engine.begin() as connection:
        assert connection.execute(text("SELECT max(id) FROM vectors")).scalar_one() == 3
        connection.execute(text("DELETE FROM vectors WHERE id = 3"))
        connection.execute(text("INSERT INTO vectors (product_id, space, vector) VALUES ('p1', 'image', x'00')"))
        assert connection.execute(text("SELECT max(id) FROM vectors")).scalar_one() == 4
    engine.dispose()

"""`prodmatch eval` keeps its catalog to itself: it once ingested into, deleted from and recalibrated the configured
database. Run with PRODMATCH_METADATA_URL / PRODMATCH_VECTORS_URL pointing at a real catalog, it must leave every row
of products, images, vectors, duplicate links, calibration and query log exactly as it found them."""

from __future__ import annotations

import csv
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pgvector.sqlalchemy import Vector  # noqa: F401  (teaches reflection the vector type)
from sqlalchemy import MetaData, create_engine, select

from prodmatch.stores.factory import open_metadata_store
from prodmatch.stores.records import QueryLogEntry
from prodmatch.stores.sql_engine import sqlalchemy_url
from tests.conftest import StoreUrl

PRODUCTS = 40


def small_catalog(myntra: Path, folder: Path) -> Path:
    """The first PRODUCTS rows of myntra-dev (enough to calibrate and hold out 20%)."""
    with (myntra / "catalog.csv").open(newline="") as source:
        reader = csv.DictReader(source)
        rows = [row for _, row in zip(range(PRODUCTS), reader, strict=False)]
        fields = reader.fieldnames or []
    target = folder / "catalog.csv"
    with target.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return target


def prodmatch(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "prodmatch", *args], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done


def fill_catalog(env: dict[str, str], catalog: Path, myntra: Path, metadata_url: str) -> None:
    """A production-like catalog: ingested (and so calibrated), with answered queries in its log."""
    columns = ("--id-col", "ProductId", "--name-col", "ProductTitle", "--image-col", "Image")
    prodmatch(
        env,
        "ingest",
        str(catalog),
        "--model",
        "offline-effnet-minilm",
        "--images-root",
        str(myntra / "images"),
        *columns,
    )
    store = open_metadata_store(metadata_url)
    try:
        store.append_queries(
            [
                QueryLogEntry(datetime(2026, 1, 1, tzinfo=UTC), "image", f"q{i}", ["1"], [0.9], 3.0, True, 0.8)
                for i in range(3)
            ]
        )
    finally:
        store.close()


def run_eval(env: dict[str, str], catalog: Path, myntra: Path) -> str:
    columns = ("--id-col", "ProductId", "--name-col", "ProductTitle", "--image-col", "Image")
    done = prodmatch(
        env,
        "eval",
        str(catalog),
        "--model",
        "offline-effnet-minilm",
        "--images-root",
        str(myntra / "images"),
        "--holdout",
        "0.2",
        *columns,
    )
    return done.stderr


def sql_rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table in the database at URL, in a stable order."""
    engine = create_engine(sqlalchemy_url(url.replace("pgvector://", "postgresql://", 1)))
    try:
        tables = MetaData()
        tables.reflect(engine)
        with engine.connect() as connection:
            return {
                name: sorted((tuple(map(str, row)) for row in connection.execute(select(table))), key=repr)
                for name, table in tables.tables.items()
            }
    finally:
        engine.dispose()


def mongo_documents(url: str) -> dict[str, list[str]]:
    from pymongo import MongoClient

    client: MongoClient[dict[str, Any]] = MongoClient(url)
    try:
        database = client.get_default_database()
        return {name: sorted(repr(doc) for doc in database[name].find()) for name in database.list_collection_names()}
    finally:
        client.close()


def folder_files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_untouched(snapshot: Callable[[], dict[str, Any]], run: Callable[[], str]) -> str:
    before = snapshot()
    said = run()
    assert snapshot() == before
    return said


@pytest.mark.slow
def test_eval_leaves_a_postgres_and_pgvector_catalog_untouched(
    store_url: StoreUrl, myntra: Path, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    metadata_url = store_url("postgresql")
    env = {
        **cli_env,
        "PRODMATCH_METADATA_URL": metadata_url,
        "PRODMATCH_VECTORS_URL": metadata_url.replace("postgresql://", "pgvector://", 1),
    }
    catalog = small_catalog(myntra, tmp_path)
    fill_catalog(env, catalog, myntra, metadata_url)
    rows = sql_rows(metadata_url)
    assert len(rows["products"]) == PRODUCTS and rows["query_log"] and rows["meta"]
    assert any(name.endswith("_vectors_image") for name in rows)

    said = assert_untouched(lambda: sql_rows(metadata_url), lambda: run_eval(env, catalog, myntra))
    assert "temporary catalog in" in said and "the configured catalog is not touched" in said


@pytest.mark.slow
def test_eval_leaves_a_mongodb_catalog_and_its_data_dir_untouched(
    store_url: StoreUrl, myntra: Path, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    metadata_url = store_url("mongodb")
    env = {**cli_env, "PRODMATCH_METADATA_URL": metadata_url}
    catalog = small_catalog(myntra, tmp_path)
    fill_catalog(env, catalog, myntra, metadata_url)
    data_dir = Path(env["PRODMATCH_DATA_DIR"])
    assert len(mongo_documents(metadata_url)["products"]) == PRODUCTS

    def snapshot() -> dict[str, Any]:
        return {"mongo": mongo_documents(metadata_url), "data dir": folder_files(data_dir)}

    assert_untouched(snapshot, lambda: run_eval(env, catalog, myntra))

"""Ingest with the real offline model: idempotent re-runs, bad rows reported, interrupted runs resume."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from prodmatch.catalog.ingest import CatalogIngester, ColumnOptions, IngestReport
from prodmatch.config import Settings
from prodmatch.errors import ModelMismatchError
from prodmatch.models.bundle import Bundle
from prodmatch.stores.datadir import DataDir
from tests.conftest import myntra_ingest_command

MODEL = "offline-effnet-minilm"


def open_datadir(settings: Settings, model: str | None = MODEL) -> DataDir:
    return DataDir.open(settings, model=model, create=True)


def ingest(settings: Settings, catalog: Path, **columns: object) -> IngestReport:
    datadir = open_datadir(settings)
    try:
        return CatalogIngester(datadir, batch_size=4).ingest_file(catalog, ColumnOptions(**columns))  # type: ignore[arg-type]
    finally:
        datadir.close()


def assert_consistent(settings: Settings) -> None:
    """Every stored vector is in its index and nothing else is."""
    datadir = DataDir.open(settings)
    try:
        for space in datadir.record.spaces:
            stored = np.sort(datadir.store.vector_ids(space))
            assert np.array_equal(stored, np.sort(datadir.index(space).ids()))
        assert datadir.repairs == [] or all(r.added + r.removed > 0 for r in datadir.repairs)
    finally:
        datadir.close()


@pytest.fixture
def electronics(shared_data: Path, tmp_path: Path) -> Path:
    """electronics-small as JSONL (its image paths are absolute paths from another machine)."""
    items = json.loads((shared_data / "electronics-small" / "metadata.json").read_text())
    catalog = tmp_path / "catalog" / "products.jsonl"
    catalog.parent.mkdir()
    shutil.copytree(shared_data / "electronics-small" / "images", catalog.parent / "images")
    catalog.write_text("".join(json.dumps(item) + "\n" for item in items))
    return catalog


def test_ingest_then_rerun_is_idempotent_and_embeds_nothing(
    electronics: Path, settings: Settings, offline_bundle: Bundle
) -> None:
    first = ingest(settings, electronics)
    assert (first.added, first.updated, first.unchanged, first.rejected) == (10, 0, 0, [])
    assert first.mapping["id"] == "id" and first.mapping["image"] == "image_path"
    datadir = DataDir.open(settings)
    vectors_before = {s: datadir.store.vector_ids(s).tolist() for s in ("image", "text")}
    product = datadir.store.get(["1"])["1"]
    datadir.close()
    assert product.attributes["price"] == 399.99 and product.images[0].path.endswith("Sony headphone- 4.jpg")

    second = ingest(settings, electronics)
    assert (second.added, second.updated, second.unchanged, second.images) == (0, 0, 10, 0)
    datadir = DataDir.open(settings)
    assert {s: datadir.store.vector_ids(s).tolist() for s in ("image", "text")} == vectors_before
    datadir.close()
    assert_consistent(settings)


def test_metadata_change_keeps_vectors_and_text_change_replaces_them(electronics: Path, settings: Settings) -> None:
    ingest(settings, electronics)
    datadir = DataDir.open(settings)
    before = datadir.store.product_vectors(["1", "2"], "text")
    datadir.close()
    rows = [json.loads(line) for line in electronics.read_text().splitlines()]
    rows[0]["price"] = 349.0  # metadata only
    rows[1]["name"] = rows[1]["name"] + " (renamed)"  # embedded text
    electronics.write_text("".join(json.dumps(row) + "\n" for row in rows))

    report = ingest(settings, electronics)
    assert (report.updated, report.unchanged, report.images) == (2, 8, 1)
    datadir = DataDir.open(settings)
    after = datadir.store.product_vectors(["1", "2"], "text")
    assert datadir.store.get(["1"])["1"].attributes["price"] == 349.0
    datadir.close()
    assert np.allclose(before[1][before[0].index("1")], after[1][after[0].index("1")])
    assert not np.allclose(before[1][before[0].index("2")], after[1][after[0].index("2")])
    assert_consistent(settings)


def test_bad_rows_are_reported_with_line_numbers_and_the_rest_ingests(electronics: Path, settings: Settings) -> None:
    images = electronics.parent / "images"
    (images / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    (images / "tiny.png").write_bytes(Path(images / "Adidas-1.jpg").read_bytes()[:200])
    good = electronics.read_text()
    bad = (
        (
            b'{"id": "x1", "name": "ghost", "image_path": "missing.jpg"}\n'
            b'{"id": "x2", "name": "broken", "image_path": "corrupt.jpg"}\n'
            b'{"id": "1", "name": "duplicate id"}\n'
            b'{"id": "x3", "name": oops}\n'
        )
        + b'{"id": "x4", "name": "caf\xe9"}\n'
        + b'{"id": "x5", "name": "truncated", "image_path": "tiny.png"}\n'
    )
    electronics.write_bytes(good.encode() + bad)

    report = ingest(settings, electronics)
    assert report.added == 10
    reasons = {r.line: r.reason for r in report.rejected}
    assert sorted(reasons) == [11, 12, 13, 14, 15, 16]
    assert "not found" in reasons[11] and "unusable image" in reasons[12]
    assert "duplicate id '1' (first seen on line 1)" in reasons[13]
    assert "malformed JSON" in reasons[14] and "UTF-8" in reasons[15] and "truncated" in reasons[16]
    assert_consistent(settings)


def test_empty_catalog_ingests_nothing(tmp_path: Path, settings: Settings) -> None:
    catalog = tmp_path / "empty.csv"
    catalog.write_text("id,name,image\n")
    report = ingest(settings, catalog)
    assert (report.added, report.rejected) == (0, [])


def test_a_data_dir_refuses_another_model(electronics: Path, settings: Settings) -> None:
    ingest(settings, electronics)
    with pytest.raises(ModelMismatchError, match="cannot be mixed"):
        DataDir.open(settings, model="clip-vit-b-32-random")


def test_near_duplicate_listings_are_detected(myntra: Path, settings: Settings) -> None:
    """myntra-dev has byte-identical and re-encoded copies of one photo under different ids."""
    report = ingest(settings, myntra / "catalog.csv", id_col="ProductId", name_col="ProductTitle", image_col="Image")
    datadir = DataDir.open(settings)
    exact, near = datadir.store.duplicate_groups(include_near=False), datadir.store.duplicate_groups()
    datadir.close()
    assert report.added == 250 and report.duplicate_groups == len(near)
    assert any({"38940", "38941"} <= set(g) for g in near)
    assert not any({"38940", "38941"} <= set(g) for g in exact)  # re-encoded, not byte-identical
    assert len(near) > len(exact) > 0


def products_in(db: Path) -> int:
    try:
        with sqlite3.connect(db) as connection:
            return int(connection.execute("select count(*) from products").fetchone()[0])
    except sqlite3.Error:
        return 0


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT])
def test_interrupted_ingest_resumes_without_duplicates_or_missing_vectors(
    how: signal.Signals, myntra: Path, settings: Settings, cli_env: dict[str, str], offline_bundle: Bundle
) -> None:
    command = myntra_ingest_command(myntra, MODEL)
    process = subprocess.Popen(command, env=cli_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = settings.data_dir / "metadata.db"
    deadline = time.monotonic() + 120
    while products_in(db) < 40 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(how)
    process.wait(timeout=60)
    done = products_in(db)
    assert 0 < done < 250, "the interrupt must land half-way"

    rerun = subprocess.run([*command, "--json"], env=cli_env, capture_output=True, text=True, timeout=300, check=True)
    report = json.loads(rerun.stdout)
    assert report["unchanged"] == done and report["added"] == 250 - done and report["rejected"] == []
    datadir = DataDir.open(settings)
    try:
        assert datadir.store.count() == 250
        for space in ("image", "text"):
            stored = datadir.store.vector_ids(space)
            assert len(stored) == 250  # one vector per product and space: nothing doubled, nothing missing
            assert np.array_equal(np.sort(stored), np.sort(datadir.index(space).ids()))
    finally:
        datadir.close()

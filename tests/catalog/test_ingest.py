"""Ingest: idempotent re-runs, bad rows reported, duplicate listings found (fast tier, the fake model of
tests/fakes.py, whose calls show what was embedded), and interrupted runs resumed (slow tier: a real `prodmatch
ingest` process with the real offline model, killed half-way)."""

from __future__ import annotations

import hashlib
import json
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from prodmatch.catalog.ingest import ColumnOptions, IngestReport
from prodmatch.composition import Catalog
from prodmatch.config import Settings
from prodmatch.errors import ModelMismatchError
from prodmatch.models.bundle import Bundle
from tests.conftest import BuiltCatalog, myntra_ingest_command
from tests.fakes import FakeEmbedders

MODEL = "offline-effnet-minilm"
Ingest = Callable[..., IngestReport]


@pytest.fixture
def ingest(settings: Settings, fake_bundle: Bundle, fake_embedders: FakeEmbedders) -> Ingest:
    """ingest(CATALOG, **columns): one ingest run into this test's data dir with the fake model (a fresh
    FakeEmbedder per run: fake_embedders.last.calls is what that run embedded)."""

    def run(catalog: Path, **columns: object) -> IngestReport:
        datadir = Catalog.open(settings, model=str(fake_bundle.folder), create=True, embedders=fake_embedders)
        try:
            return datadir.ingester(batch_size=4).ingest_file(catalog, ColumnOptions(**columns))  # type: ignore[arg-type]
        finally:
            datadir.close()

    return run


def assert_consistent(settings: Settings) -> None:
    """Every product has its vectors, every stored vector is in its index and nothing else is."""
    datadir = Catalog.open(settings, embedders=FakeEmbedders())
    try:
        for space in datadir.record.spaces:
            stored = np.sort(datadir.store.vector_ids(space))
            assert np.array_equal(stored, np.sort(datadir.stores.index(space).ids()))
        assert len(datadir.store.vector_ids("text")) == datadir.store.count()
        assert datadir.stores.repairs == []  # nothing had to be repaired: ingest kept them in step itself
    finally:
        datadir.close()


def test_ingest_then_rerun_is_idempotent_and_embeds_nothing(
    electronics: Path, settings: Settings, ingest: Ingest, fake_embedders: FakeEmbedders
) -> None:
    first = ingest(electronics)
    assert (first.added, first.updated, first.unchanged, first.rejected) == (10, 0, 0, [])
    assert first.images == fake_embedders.last.count("image") == 10 and fake_embedders.last.count("text") == 10
    assert first.mapping["id"] == "id" and first.mapping["image"] == "image_path"
    datadir = Catalog.open(settings, embedders=FakeEmbedders())
    vectors_before = {s: datadir.store.vector_ids(s).tolist() for s in ("image", "text")}
    product = datadir.store.get(["1"])["1"]
    datadir.close()
    assert product.attributes["price"] == 399.99 and product.images[0].path.endswith("Sony headphone- 4.jpg")
    assert Path(product.images[0].path).is_file()  # found by file name beside the catalog

    models_loaded = len(fake_embedders.made)
    second = ingest(electronics)
    assert (second.added, second.updated, second.unchanged, second.images) == (0, 0, 10, 0)
    assert len(fake_embedders.made) == models_loaded  # nothing to embed: the model is not even loaded
    datadir = Catalog.open(settings, embedders=FakeEmbedders())
    assert {s: datadir.store.vector_ids(s).tolist() for s in ("image", "text")} == vectors_before
    datadir.close()
    assert_consistent(settings)


def test_metadata_change_keeps_vectors_and_text_change_replaces_them(
    electronics: Path, settings: Settings, ingest: Ingest, fake_embedders: FakeEmbedders
) -> None:
    ingest(electronics)
    datadir = Catalog.open(settings, embedders=FakeEmbedders())
    before = datadir.store.product_vectors(["1", "2"], "text")
    datadir.close()
    rows = [json.loads(line) for line in electronics.read_text().splitlines()]
    rows[0]["price"] = 349.0  # metadata only
    rows[1]["name"] = rows[1]["name"] + " (renamed)"  # embedded text
    electronics.write_text("".join(json.dumps(row) + "\n" for row in rows))

    report = ingest(electronics)
    assert (report.added, report.updated, report.unchanged) == (0, 2, 8)
    assert fake_embedders.last.count("text") == 1  # the renamed product's text, nothing else
    assert fake_embedders.last.count("image") == report.images
    datadir = Catalog.open(settings, embedders=FakeEmbedders())
    after = datadir.store.product_vectors(["1", "2"], "text")
    assert datadir.store.get(["1"])["1"].attributes["price"] == 349.0
    assert datadir.store.get(["2"])["2"].name.endswith("(renamed)")
    datadir.close()
    assert np.array_equal(before[1][before[0].index("1")], after[1][after[0].index("1")])
    assert not np.allclose(before[1][before[0].index("2")], after[1][after[0].index("2")])
    assert_consistent(settings)


def test_bad_rows_are_reported_with_line_numbers_and_the_rest_ingests(
    electronics: Path,
    settings: Settings,
    ingest: Ingest,
) -> None:
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

    report = ingest(electronics)
    assert report.added == 10
    reasons = {r.line: r.reason for r in report.rejected}
    assert sorted(reasons) == [11, 12, 13, 14, 15, 16]
    assert "not found" in reasons[11] and "unusable image" in reasons[12]
    assert "duplicate id '1' (first seen on line 1)" in reasons[13]
    assert "malformed JSON" in reasons[14] and "UTF-8" in reasons[15] and "truncated" in reasons[16]
    datadir = Catalog.open(settings, embedders=FakeEmbedders())
    try:
        assert datadir.store.count() == 10 and datadir.store.get(["1"])["1"].name.startswith("Sony")
    finally:
        datadir.close()
    assert_consistent(settings)


def test_empty_catalog_ingests_nothing(tmp_path: Path, ingest: Ingest) -> None:
    catalog = tmp_path / "empty.csv"
    catalog.write_text("id,name,image\n")
    report = ingest(catalog)
    assert (report.added, report.rejected) == (0, [])


def test_a_data_dir_refuses_another_model(
    electronics: Path, settings: Settings, ingest: Ingest, fake_shared_bundle: Bundle
) -> None:
    ingest(electronics)
    for other in ("clip-vit-b-32-random", str(fake_shared_bundle.folder)):
        with pytest.raises(ModelMismatchError, match="cannot be mixed"):
            Catalog.open(settings, model=other, embedders=FakeEmbedders())


def test_duplicate_listings_are_found_byte_identical_and_re_encoded(
    fake_myntra_template: BuiltCatalog, fake_myntra: Settings, myntra: Path
) -> None:
    """myntra-dev lists some photos under several ids: byte-identical files, and re-encoded copies of one photo."""
    by_digest: dict[str, set[str]] = {}
    for row in (myntra / "catalog.csv").read_text().splitlines()[1:]:
        product_id, image = row.split(",")[0], row.split(",")[8]
        by_digest.setdefault(hashlib.sha256((myntra / "images" / image).read_bytes()).hexdigest(), set()).add(
            product_id
        )
    identical = {frozenset(ids) for ids in by_digest.values() if len(ids) > 1}
    datadir = Catalog.open(fake_myntra, embedders=FakeEmbedders())
    try:
        exact = {frozenset(g) for g in datadir.store.duplicate_groups(include_near=False)}
        near = [set(g) for g in datadir.store.duplicate_groups()]
    finally:
        datadir.close()
    assert exact == identical and len(identical) == 34
    assert fake_myntra_template.report.duplicate_groups == len(near) > len(exact)
    assert any({"38940", "38941"} <= g for g in near)  # the same photo, re-encoded
    assert all(any(group <= g for g in near) for group in identical)  # every identical group is also near


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
    datadir = Catalog.open(settings)
    try:
        assert datadir.store.count() == 250
        for space in ("image", "text"):
            stored = datadir.store.vector_ids(space)
            assert len(stored) == 250  # one vector per product and space: nothing doubled, nothing missing
            assert np.array_equal(np.sort(stored), np.sort(datadir.stores.index(space).ids()))
    finally:
        datadir.close()

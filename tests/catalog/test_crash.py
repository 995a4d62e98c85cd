"""Crash safety: `prodmatch ingest` killed with SIGKILL at random points (seeded), on SQLite + FAISS and on
PostgreSQL + pgvector; the rerun completes and the catalog is checked row by row: the products are exactly the
catalog's, each product has each of its vectors once, no vector belongs to no product, and the index holds exactly
the vector table's ids (read as stored, before anything repairs it on open).

The real command line runs in its own process (tests/fake_cli.py: the fake model, each model call slowed so that
a run spans several batches' writes and the kill lands before, between or inside them)."""

from __future__ import annotations

import collections
import csv
import json
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from prodmatch.config import Settings
from prodmatch.models.bundle import Bundle
from prodmatch.stores.factory import open_metadata_store, open_vector_index
from prodmatch.stores.protocols import MetadataStore
from tests.conftest import StoreUrl
from tests.fakes import IMAGE_DIMS, TEXT_DIMS

ROWS = 40  # two ingest batches (32 + 8)
SEEDS = (7, 1)  # kill points: one after the first batch is stored, one from start-up
SPACES = {"image": IMAGE_DIMS, "text": TEXT_DIMS}


@pytest.fixture(scope="module")
def small_catalog(myntra: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """The first ROWS rows of myntra-dev as their own CSV (images found under myntra-dev/images)."""
    with (myntra / "catalog.csv").open(newline="") as source:
        rows = list(csv.DictReader(source))[:ROWS]
    path = tmp_path_factory.mktemp("crash") / "catalog.csv"
    with path.open("w", newline="") as target:
        writer = csv.DictWriter(target, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path, [row["ProductId"] for row in rows]


def command(catalog: Path, myntra: Path, bundle: Bundle, settings: Settings) -> list[str]:
    return [
        *(sys.executable, "-m", "tests.fake_cli"),
        *("--metadata-url", settings.location().metadata_url, "--vectors-url", settings.location().vectors_url),
        *("ingest", str(catalog), "--model", str(bundle.folder), "--images-root", str(myntra / "images")),
        *("--id-col", "ProductId", "--name-col", "ProductTitle", "--image-col", "Image", "--json"),
    ]


def kill_at_random_point(cmd: list[str], env: dict[str, str], seed: int, metadata_url: str) -> int:
    """Run CMD and SIGKILL it at a seeded point: a random pause after start-up, after the first batch is stored
    (inside the second batch's decoding, model calls or writes) or after the last (inside the calibration that
    follows). The number of products stored when it died."""
    chance = random.Random(seed)
    target = chance.choice([0, 1, ROWS])
    # after start-up: past the imports, into opening (creating, migrating) the stores and the first batch; after
    # the first batch: inside the second one; after the last: inside the calibration
    pause = chance.uniform(2.0, 3.5) if target == 0 else chance.uniform(0.0, 0.3 if target == 1 else 1.0)
    process = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while target and stored_products(metadata_url) < target and process.poll() is None:
        assert time.monotonic() < deadline, "the ingest made no progress"
        time.sleep(0.05)
    time.sleep(pause)
    process.kill()
    process.wait(timeout=30)
    return stored_products(metadata_url)


def stored_products(metadata_url: str) -> int:
    if metadata_url.startswith("sqlite:") and not Path(metadata_url.removeprefix("sqlite:///")).exists():
        return 0  # not created yet (opening the store would create it)
    try:
        store = open_metadata_store(metadata_url)
    except Exception:
        return 0  # the database is mid-migration in the killed process
    try:
        return store.count()
    finally:
        store.close()


def check_row_by_row(store: MetadataStore, settings: Settings, catalog_ids: list[str]) -> None:
    stored_products = {p.id for p in store.page(0, 10 * len(catalog_ids))}
    assert stored_products == set(catalog_ids) and store.count() == len(catalog_ids)  # none lost, none extra
    for space, dims in SPACES.items():
        owners, _vectors = store.product_vectors(catalog_ids, space)
        per_product = collections.Counter(owners)
        assert per_product == collections.Counter(catalog_ids), space  # each product's vector once (one photo)
        vector_ids = np.sort(store.vector_ids(space))
        assert len(vector_ids) == len(catalog_ids) and set(store.vector_owners(vector_ids.tolist()).values()) == set(
            catalog_ids
        )  # no orphaned vector rows
        index = open_vector_index(settings.location().vectors_url, space, dims, settings.index)
        try:
            assert np.array_equal(np.sort(index.ids()), vector_ids), space  # the index as stored == the table
        finally:
            index.close()


@pytest.mark.slow  # separate processes for minutes: CI runs it, the fast tier does not
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("backend", ["sqlite+faiss", "postgresql+pgvector"])
def test_ingest_killed_at_a_random_point_reruns_to_an_exact_catalog(
    backend: str,
    seed: int,
    small_catalog: tuple[Path, list[str]],
    myntra: Path,
    fake_bundle: Bundle,
    settings: Settings,
    store_url: StoreUrl,
    cli_env: dict[str, str],
) -> None:
    catalog, catalog_ids = small_catalog
    if backend == "postgresql+pgvector":
        url = store_url("postgresql")
        settings = settings.model_copy(
            update={"metadata_url": url, "vectors_url": url.replace("postgresql", "pgvector", 1)}
        )
    cmd = [*command(catalog, myntra, fake_bundle, settings), "--data-dir", str(settings.data_dir)]
    env = {**cli_env, "PRODMATCH_FAKE_DELAY_S": "0.15", "PYTHONPATH": ":".join(sys.path)}
    killed_at = kill_at_random_point(cmd, env, seed, settings.location().metadata_url)
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    report = json.loads(rerun.stdout)
    assert report["rejected"] == [] and report["added"] + report["unchanged"] == len(catalog_ids), report
    assert report["unchanged"] == killed_at, report  # what the killed run committed is kept, not redone
    store = open_metadata_store(settings.location().metadata_url)
    try:
        check_row_by_row(store, settings, catalog_ids)
    finally:
        store.close()

"""`prodmatch ingest --engine ray` as a user runs it: a real `prodmatch` process that starts its own local Ray (on
127.0.0.1 only, no dashboard: catalog.ray_engine.start_ray) and embeds with the real offline model on Ray actors.
It must store the same catalog as `--engine local`: the same products, photos, hashes and signatures, the same
duplicate groups, and the same vectors to 1e-6 (the actors run the model on one thread each, the local engine on
all cores, so float sums may round differently in the last bits: 2e-8 measured)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from prodmatch.composition import open_catalog
from prodmatch.config import Settings
from prodmatch.models.bundle import Bundle

pytest.importorskip("ray")


def ingest(env: dict[str, str], catalog: Path, data_dir: Path, *engine: str) -> dict[str, Any]:
    args = ["ingest", str(catalog), "--data-dir", str(data_dir), "--model", "offline-effnet-minilm", "--json"]
    done = subprocess.run(
        [sys.executable, "-m", "prodmatch", *args, *engine], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def stored(settings: Settings, data_dir: Path) -> tuple[dict[str, Any], dict[str, np.ndarray], list[list[str]]]:
    """Every stored product (as shown, with its hashes and image signatures), its vectors by space, duplicate groups."""
    with open_catalog(settings.model_copy(update={"data_dir": data_dir})) as catalog:
        products = {p.id: p for p in catalog.store.page(0, 1000)}
        shown = {
            pid: (p.as_dict(), p.content_hash, p.embed_hash, [(ref.sha256, ref.signature) for ref in p.images])
            for pid, p in products.items()
        }
        vectors = {}
        for space in catalog.record.spaces:
            owners, rows = catalog.store.product_vectors(sorted(products), space)
            assert sorted(owners) == sorted(products)  # one vector per product and space, none twice
            vectors[space] = rows[np.argsort(owners, kind="stable")]
        return shown, vectors, catalog.store.duplicate_groups()


def test_cli_ray_engine_stores_the_same_catalog_as_the_local_engine(
    shared_data: Path, cli_env: dict[str, str], settings: Settings, offline_bundle: Bundle, tmp_path: Path
) -> None:
    catalog = shared_data / "electronics-small" / "metadata.json"
    env = {key: value for key, value in cli_env.items() if key != "RAY_ADDRESS"}  # a local Ray, never a cluster
    on_ray = ingest(env, catalog, tmp_path / "ray", "--engine", "ray", "--ray-actors", "2")
    local = ingest(env, catalog, tmp_path / "local", "--engine", "local")
    for report in (on_ray, local):
        assert (report["added"], report["rejected"], report["images"]) == (10, [], 10)
    ray_products, ray_vectors, ray_groups = stored(settings, tmp_path / "ray")
    local_products, local_vectors, local_groups = stored(settings, tmp_path / "local")
    assert ray_products == local_products and ray_groups == local_groups
    assert ray_vectors.keys() == local_vectors.keys() == {"image", "text"}
    for space, vectors in local_vectors.items():
        assert vectors.shape == ray_vectors[space].shape and len(vectors) == 10
        np.testing.assert_allclose(ray_vectors[space], vectors, atol=1e-6, err_msg=space)

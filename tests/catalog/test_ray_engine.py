"""The Ray engine (`ingest --engine ray`): the model on Ray actors, everything else as the local engine. One local
Ray for the session (tests/catalog/conftest.py), on 127.0.0.1 only; its workers import prodmatch and the tests from
this checkout.

Both engines store the same catalog with the same vectors (real offline model), and a model worker killed mid-run
is restarted by Ray and its call retried: the ingest completes with every product once (the fake model)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest

from prodmatch.catalog.ingest import ColumnOptions, IngestReport
from prodmatch.composition import Catalog, EmbedderFactory
from prodmatch.config import Settings
from prodmatch.models.bundle import Bundle
from prodmatch.models.factory import create_embedder
from tests.fakes import FakeEmbedders

ray = pytest.importorskip("ray")
from prodmatch.catalog.ray_engine import RayEmbedders  # noqa: E402  (needs ray)


def ingest(settings: Settings, folder: Path, bundle: Bundle, embedders: EmbedderFactory, **kwargs: object) -> Catalog:
    catalog = Catalog.open(
        settings.model_copy(update={"data_dir": folder}), model=str(bundle.folder), create=True, embedders=embedders
    )
    report: IngestReport = catalog.ingester(batch_size=4).ingest_file(kwargs.pop("source"), ColumnOptions(), **kwargs)  # type: ignore[arg-type]
    assert (report.added, report.rejected) == (10, [])
    return catalog


def stored(catalog: Catalog) -> tuple[dict[str, object], dict[str, np.ndarray]]:
    ids = sorted(catalog.store.get(list(map(str, range(1, 11)))))
    products = catalog.store.get(ids)
    shown = {pid: (p.content_hash, [ref.sha256 for ref in p.images], p.as_dict()) for pid, p in products.items()}
    vectors = {}
    for space in ("image", "text"):
        owners, rows = catalog.store.product_vectors(ids, space)
        assert sorted(owners) == ids  # one vector per product and space: nothing missing, nothing twice
        vectors[space] = rows[np.argsort(owners)]
    return shown, vectors


@pytest.mark.usefixtures("local_ray")
def test_ray_and_local_engines_store_the_same_catalog(
    electronics: Path, settings: Settings, offline_bundle: Bundle, tmp_path: Path
) -> None:
    local = ingest(settings, tmp_path / "local", offline_bundle, create_embedder, source=electronics)
    on_ray = ingest(settings, tmp_path / "ray", offline_bundle, RayEmbedders(actors=2), source=electronics)
    try:
        (local_products, local_vectors), (ray_products, ray_vectors) = stored(local), stored(on_ray)
        assert ray_products.keys() == local_products.keys()
        for pid, (content_hash, shas, _shown) in local_products.items():
            assert ray_products[pid][:2] == (content_hash, shas)
        for space, vectors in local_vectors.items():
            cosines = np.sum(vectors * ray_vectors[space], axis=1)
            assert cosines.min() >= 0.9999, space
    finally:
        local.close()
        on_ray.close()


@pytest.mark.usefixtures("local_ray")
def test_a_killed_model_worker_is_restarted_and_the_ingest_completes_once(
    electronics: Path, settings: Settings, fake_bundle: Bundle, tmp_path: Path
) -> None:
    engine = RayEmbedders(actors=2, factory=FakeEmbedders())
    killed: list[int] = []

    def kill_after_first_batch(rows: int, images: int) -> None:
        if not killed:  # the model's first actor dies between batches; the next batch's call finds it dead
            actor = engine.made[0].actors[0]
            killed.append(ray.get(actor.pid.remote()))
            os.kill(killed[0], signal.SIGKILL)

    catalog = ingest(
        settings, tmp_path / "data", fake_bundle, engine, source=electronics, progress=kill_after_first_batch
    )
    try:
        _products, vectors = stored(catalog)
        assert all(len(rows) == 10 for rows in vectors.values())
        assert len(catalog.store.vector_ids("image")) == len(catalog.store.vector_ids("text")) == 10
        restarted = ray.get(engine.made[0].actors[0].pid.remote())
        assert killed and restarted != killed[0]  # Ray restarted the actor in a new process
    finally:
        catalog.close()

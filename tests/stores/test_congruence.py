"""Every metadata store x every vector index runs one scenario (ingest, metadata-only and re-embedding updates,
delete, filtered pages and matches) and must observe what the embedded defaults (SQLite + FAISS) observe.

The servers are real: PostgreSQL 16 + pgvector and the nx-27017 MongoDB wire-protocol server, started on
127.0.0.1 by tests/servers.py; Qdrant runs in local mode (no server binary installs here); Milvus is milvus-lite's
gRPC server (tests/stores/milvus_server.py); Chroma is the server the chromadb wheel ships."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from prodmatch.catalog.ingest import ColumnOptions
from prodmatch.composition import Catalog
from prodmatch.config import Settings
from prodmatch.matching.service import MatchResult
from prodmatch.models.bundle import Bundle
from prodmatch.stores.filters import parse_filters
from tests.conftest import StoreUrl
from tests.samples import match_photo, match_words

MODEL = "offline-effnet-minilm"
METADATA = ("sqlite", "postgresql", "mongodb")
VECTORS = ("faiss", "pgvector", "qdrant+local")
FILTER_SETS = [[], ["type=tshirts"], ["price>=500"], ["colour!=black", "price<800"], ["on_sale=true"], ["year=2013"]]
SCORE_DECIMALS = 4  # scores agree to float32 rounding across engines; equal-score ties may order either way


def sample_rows(myntra: Path) -> list[dict[str, str]]:
    """60 of myntra-dev's products, every fourth (the file is sorted by gender)."""
    with open(myntra / "catalog.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))[::4][:60]


def write_catalog(myntra: Path, folder: Path, changed: bool) -> Path:
    """The sample with numbers, booleans and numeric text added; CHANGED: the second version, with five
    products recoloured (metadata only) and one given another product's photo (re-embedded)."""
    rows = sample_rows(myntra)
    lines = []
    for i, row in enumerate(rows):
        image = row["Image"] if not (changed and i == 5) else rows[50]["Image"]
        item = {
            "id": row["ProductId"],
            "title": row["ProductTitle"],
            "image": str(myntra / "images" / image),
            "gender": row["Gender"],
            "colour": "Purple" if changed and i < 5 else row["Colour"],
            "type": row["ProductType"],
            "price": 199 + (int(row["ProductId"]) * 37) % 1200,
            "on_sale": i % 3 == 0,
            "year": str(2011 + i % 3),
        }
        lines.append(json.dumps(item))
    path = folder / f"catalog-{'v2' if changed else 'v1'}.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def ranked(result: MatchResult) -> list[tuple[float, str]]:
    """(score, id) best first, equal scores in id order: the comparison is blind to how ties were broken."""
    return sorted((-round(m.score, SCORE_DECIMALS), m.id) for m in result.matches)


def observe_matches(catalog: Catalog, myntra: Path, rows: list[str]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for filters in FILTER_SETS:
        parsed = parse_filters(filters)
        for product_id in rows:
            photo = myntra / "images" / f"{product_id}.jpg"
            seen[f"image {product_id} {filters}"] = ranked(match_photo(catalog, photo, 8, parsed))
        # hybrid text search: the lexical index is read from each store ("purple" exists only in v2, metadata-only)
        for text in ("blue shirt for men", "black watch", "purple tshirts", "navy blue t-shirt"):
            seen[f"text {text} {filters}"] = ranked(match_words(catalog, text, 8, parsed))
    return seen


def observe_catalog(datadir: Catalog, some_ids: list[str]) -> dict[str, Any]:
    store = datadir.store
    seen: dict[str, Any] = {"duplicates": store.duplicate_groups()}
    for filters in FILTER_SETS:
        parsed = parse_filters(filters)
        seen[f"count {filters}"] = store.count(parsed)
        seen[f"page {filters}"] = [p.id for p in store.page(3, 20, parsed)]
    for space in datadir.record.spaces:
        stored = np.sort(store.vector_ids(space))
        indexed = np.sort(datadir.stores.index(space).ids())
        assert np.array_equal(stored, indexed), f"{space} index differs from the store"
        seen[f"vectors {space}"] = len(stored)
    products = store.get([*some_ids, "missing"])
    seen["products"] = {pid: (p.name, p.attributes, [i.sha256 for i in p.images]) for pid, p in products.items()}
    return seen


def run_scenario(settings: Settings, myntra: Path, folder: Path) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for version, changed in (("v1", False), ("v2", True)):
        datadir = Catalog.open(settings, model=MODEL, create=True)
        try:
            report = datadir.ingester(batch_size=16).ingest_file(
                write_catalog(myntra, folder, changed), ColumnOptions(name_col="title")
            )
            seen[f"ingest {version}"] = (report.added, report.updated, report.unchanged, len(report.rejected))
            ids = [row["ProductId"] for row in sample_rows(myntra)]
            if changed:
                datadir.stores.delete(ids[1])
            datadir.facts.refresh()
            seen |= {f"{version} {k}": v for k, v in observe_catalog(datadir, ids[:3]).items()}
            seen |= {f"{version} {k}": v for k, v in observe_matches(datadir, myntra, [ids[0], ids[33]]).items()}
        finally:
            datadir.close()
    return seen


def scenario_settings(base: Settings, folder: Path, metadata_url: str, vectors_url: str) -> Settings:
    return base.model_copy(
        update={"data_dir": folder / "data", "metadata_url": metadata_url, "vectors_url": vectors_url}
    )


@pytest.fixture(scope="module")
def reference(
    base_settings: Settings, offline_bundle: Bundle, myntra: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("reference")
    settings = scenario_settings(
        base_settings, folder, f"sqlite:///{folder / 'metadata.db'}", f"faiss://{folder / 'faiss'}"
    )
    return run_scenario(settings, myntra, folder)


# Milvus (milvus-lite's server) and Chroma join with SQLite only: which metadata store feeds an index is covered above.
PAIRS = [(m, v) for m in METADATA for v in VECTORS if (m, v) != ("sqlite", "faiss")]
PAIRS += [("sqlite", "milvus"), ("sqlite", "chroma")]


@pytest.mark.parametrize(("metadata", "vectors"), PAIRS)
def test_store_pair_observes_what_the_defaults_observe(
    metadata: str,
    vectors: str,
    reference: dict[str, Any],
    base_settings: Settings,
    store_url: StoreUrl,
    myntra: Path,
    tmp_path: Path,
) -> None:
    settings = scenario_settings(base_settings, tmp_path, store_url(metadata), store_url(vectors))
    seen = run_scenario(settings, myntra, tmp_path)
    assert seen.keys() == reference.keys()
    differing = [key for key in reference if seen[key] != reference[key]]
    assert not differing, {key: (seen[key], reference[key]) for key in differing[:3]}


def test_scenario_exercises_what_it_claims(reference: dict[str, Any], myntra: Path) -> None:
    """The reference itself: updates and the delete happened, every filter selects some but not all products."""
    assert reference["ingest v1"] == (60, 0, 0, 0)
    assert reference["ingest v2"] == (0, 6, 54, 0)
    assert reference["v2 count []"] == 59
    for filters in FILTER_SETS[1:]:
        assert 0 < reference[f"v2 count {filters}"] < 59, filters
    assert reference["v2 duplicates"] != reference["v1 duplicates"]  # product 5 now shares product 50's photo
    rows = sample_rows(myntra)
    recoloured = {row["ProductId"] for row in rows[:5]} - {rows[1]["ProductId"]}  # v2 deletes the second
    top = {version: {pid for _, pid in reference[f"{version} text purple tshirts []"][:5]} for version in ("v1", "v2")}
    assert recoloured <= top["v2"] and len(recoloured & top["v1"]) <= 1  # the lexical index followed v2's recolouring

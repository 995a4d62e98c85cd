"""`prodmatch doctor`: is the configured catalog able to serve, and if not, what to do about it.

Each check says OK or what is wrong and how to fix it. The checks only read: no catalog is created, no index is
repaired, no bundle exported (opening an index for serving repairs it; here the stored vector ids and the index's
ids are compared as they are on disk or in the database)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from prodmatch.composition import METADATA_FILE, Catalog, EmbedderFactory
from prodmatch.config import Settings
from prodmatch.errors import ProdmatchError
from prodmatch.models.bundle import is_bundle
from prodmatch.models.factory import create_embedder
from prodmatch.stores.availability import unavailable_reason
from prodmatch.stores.factory import open_vector_index

MIN_FREE_BYTES = 1 << 30  # below 1 GiB free, an ingest or the query log may fail half-way


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def diagnose(settings: Settings, embedders: EmbedderFactory = create_embedder) -> list[Check]:
    """Every check, in the order a fix has to happen (a catalog's stores before its indexes and model)."""
    folder = settings.location().folder
    checks = [_data_dir(folder), _disk_space(folder)]
    catalog, opened = _open(settings, embedders)
    checks.append(opened)
    if catalog is None:
        return checks
    try:
        checks += [_guarded(f"vectors ({space})", partial(_index, catalog, space)) for space in catalog.record.spaces]
        checks.append(_guarded("model", partial(_model, catalog)))
    finally:
        catalog.close()
    return checks


def _data_dir(folder: Path) -> Check:
    if not folder.is_dir():
        return Check(
            "data dir",
            False,
            f"{folder} does not exist",
            "set PRODMATCH_DATA_DIR (or --data-dir) to the catalog's "
            "data dir, or create a catalog there: prodmatch ingest CATALOG.csv --data-dir " + str(folder),
        )
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        return Check("data dir", False, f"{folder} is not writable ({exc.strerror})", f"chown/chmod {folder}")
    return Check("data dir", True, f"{folder} exists and is writable")


def _disk_space(folder: Path) -> Check:
    existing = next((p for p in (folder, *folder.parents) if p.exists()), Path("/"))
    free = shutil.disk_usage(existing).free
    detail = f"{free / (1 << 30):.1f} GiB free on the data dir's disk"
    if free < MIN_FREE_BYTES:
        return Check("disk space", False, detail, "free up space or move the data dir to a larger disk")
    return Check("disk space", True, detail)


def _open(settings: Settings, embedders: EmbedderFactory) -> tuple[Catalog | None, Check]:
    location = settings.location()
    embedded = location.metadata_url.startswith("sqlite:")
    if embedded and not (location.folder / METADATA_FILE).exists():
        fix = f"create it: prodmatch ingest CATALOG.csv --data-dir {location.folder}"
        return None, Check("metadata", False, f"no catalog in {location.folder}", fix)
    try:
        catalog = Catalog.open(settings, embedders=embedders)
        count = catalog.store.count()
    except Exception as exc:
        reason = unavailable_reason(exc)
        if reason is None and not isinstance(exc, ProdmatchError):
            reason = f"{type(exc).__name__}: {exc}"
        fix = "start the database, or fix PRODMATCH_METADATA_URL / --metadata-url"
        return None, Check("metadata", False, f"{_redacted(location.metadata_url)}: {reason or exc}", fix)
    detail = f"{_redacted(location.metadata_url)}: {count} products, schema at the newest revision"
    return catalog, Check("metadata", True, detail)


def _index(catalog: Catalog, space: str) -> Check:
    """The index as stored, compared id by id with the vectors the metadata store holds."""
    url = catalog.location.vectors_url
    index = open_vector_index(url, space, catalog.record.spaces[space], catalog.settings.index)
    try:
        stored, present = catalog.store.vector_ids(space), index.ids()
    finally:
        index.close()
    missing, extra = np.setdiff1d(stored, present), np.setdiff1d(present, stored)
    detail = f"{_redacted(url)}: {len(present)} vectors, {len(stored)} in the metadata store"
    if len(missing) or len(extra):
        detail += f" ({len(missing)} missing from the index, {len(extra)} not in the metadata store)"
        fix = "serving or ingesting repairs the index on open; or rebuild it: prodmatch ingest CATALOG.csv again"
        return Check(f"vectors ({space})", False, detail, fix)
    return Check(f"vectors ({space})", True, detail)


def _model(catalog: Catalog) -> Check:
    record, settings = catalog.record, catalog.settings
    if not is_bundle(Path(record.bundle)):
        fix = f"export it: prodmatch model export {record.name} --precision {record.precision}"
        return Check("model", False, f"bundle {record.name} missing at {record.bundle}", fix)
    embedder = catalog.embedder()
    where = settings.model_url or "in process"
    if (problem := embedder.health()) is not None:
        fix = "start the Triton server with the bundle's repository, or fix PRODMATCH_MODEL_URL / --model-url"
        return Check("model", False, f"{record.name} on {where}: {problem}", fix)
    vectors = embedder.embed_texts(["doctor check"])
    if vectors.shape[1] != embedder.dims["text"]:
        return Check("model", False, f"{record.name} gives {vectors.shape[1]}-d text vectors", "re-export the bundle")
    return Check("model", True, f"{record.name} ({record.precision}) loads and runs {where}")


def _guarded(name: str, check: Callable[[], Check]) -> Check:
    """CHECK, or its failure as a problem (a doctor that crashes on what it diagnoses helps nobody)."""
    try:
        return check()
    except Exception as exc:
        reason = unavailable_reason(exc) or f"{type(exc).__name__}: {exc}"
        return Check(name, False, reason, "see the detail; fix the setting it names, then run prodmatch doctor again")


def _redacted(url: str) -> str:
    """URL without a password (doctor output is pasted into tickets)."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at or ":" not in credentials:
        return url
    return f"{scheme}{sep}{credentials.split(':', 1)[0]}:***@{host}"

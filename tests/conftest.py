"""Shared fixtures: the sample data beside the checkout, real model bundles exported once per run, and the fast
tier's fake model (tests/fakes.py) with a sample catalog built with it once per run and copied for each test.

Tiers: a test that asks for a real model bundle (REAL_MODEL_FIXTURES) is marked `slow` here, wherever it lives, so
`pytest -m "not slow and not browser"` never exports or runs a real model; CI runs everything.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from prodmatch.catalog.ingest import IngestReport
from prodmatch.composition import Catalog
from prodmatch.config import Settings
from prodmatch.matching.decision import DECISION_KEY, to_meta
from prodmatch.models.bundle import Bundle
from prodmatch.models.embedder import Embedder
from prodmatch.models.factory import create_embedder, ensure_bundle
from tests.fakes import KNOWN_CALIBRATIONS, FakeEmbedders, make_fake_bundle
from tests.samples import MYNTRA_COLUMNS
from tests.servers import MongoWireServer, PostgresServer, RedisServer

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
# Bundles are real exports; they are cached between runs (CI starts empty and exports once).
MODELS_DIR = Path(os.environ.get("PRODMATCH_TEST_MODELS_DIR", REPO / ".cache" / "test-models"))
# Tests talk to loopback only: the model hub (which choosing a default model may try for CLIP weights) is off for
# this process and every process it starts.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"


def _forget_prodmatch_settings() -> None:
    """Drop the PRODMATCH_ settings of whoever runs the tests (a developer's PRODMATCH_METADATA_URL, say): a test
    must only ever touch the stores it made itself. Tests that need a setting pass it explicitly."""
    names = {name.upper() for name in Settings.model_fields}
    for key in list(os.environ):
        field = key.removeprefix("PRODMATCH_").split("__", 1)[0]
        if key.startswith("PRODMATCH_") and field in names:
            del os.environ[key]


_forget_prodmatch_settings()

# Fixtures that export (first run) and load real model bundles: whoever uses one is in the slow tier.
REAL_MODEL_FIXTURES = frozenset(
    {"offline_bundle", "lite1_bundle", "clip_random_bundle", "offline_embedder", "triton_repository"}
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if REAL_MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def myntra_ingest_command(myntra: Path, model: str = "offline-effnet-minilm") -> list[str]:
    """`prodmatch ingest` of myntra-dev, as a user types it (its columns need naming)."""
    return [
        sys.executable,
        "-m",
        "prodmatch",
        "ingest",
        str(myntra / "catalog.csv"),
        "--model",
        model,
        "--id-col",
        "ProductId",
        "--name-col",
        "ProductTitle",
        "--image-col",
        "Image",
    ]


def calibration_photos() -> list[Path]:
    """Real photos that are not in myntra-dev, so int8 parity on myntra-dev is measured on unseen images."""
    folders = [SHARED_DATA / "deepfashion-views" / "images", SHARED_DATA / "electronics-small" / "images"]
    return sorted(p for folder in folders for p in folder.glob("*.jpg"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "myntra-dev" / "catalog.csv").is_file():
        pytest.fail(f"sample data missing: expected {SHARED_DATA} beside the checkout (see README)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def myntra(shared_data: Path) -> Path:
    return shared_data / "myntra-dev"


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    return Settings(models_dir=MODELS_DIR, data_dir=Path("unused"))


@pytest.fixture
def settings(base_settings: Settings, tmp_path: Path) -> Settings:
    """Settings with a fresh data dir per test and the shared bundle cache. A deep copy: a test that changes a
    nested setting (settings.serve...) must not change it for the tests after it."""
    return base_settings.model_copy(update={"data_dir": tmp_path / "data"}, deep=True)


@pytest.fixture(scope="session")
def offline_bundle(base_settings: Settings) -> Bundle:
    return ensure_bundle("offline-effnet-minilm", base_settings, "fp32")


@pytest.fixture(scope="session")
def lite1_bundle(base_settings: Settings) -> Bundle:
    return ensure_bundle("offline-effnet-lite1-minilm", base_settings, "fp32")


@pytest.fixture(scope="session")
def clip_random_bundle(base_settings: Settings) -> Bundle:
    return ensure_bundle("clip-vit-b-32-random", base_settings, "fp32")


@pytest.fixture(scope="session")
def offline_embedder(offline_bundle: Bundle, base_settings: Settings) -> Embedder:
    return create_embedder(offline_bundle, base_settings)


@pytest.fixture(scope="session")
def fake_bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    """The fake model's bundle: separate image (192-d) and text (96-d) spaces, like the offline model."""
    return make_fake_bundle(tmp_path_factory.mktemp("fake-bundle"))


@pytest.fixture(scope="session")
def fake_shared_bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    """The fake model with one shared space (text queries also search photos), like CLIP."""
    return make_fake_bundle(tmp_path_factory.mktemp("fake-shared-bundle"), shared_space=True)


@pytest.fixture
def fake_embedders() -> FakeEmbedders:
    """The fake model factory for Catalog.open / open_catalog / create_app; it keeps what it made."""
    return FakeEmbedders()


@dataclass(frozen=True)
class BuiltCatalog:
    data_dir: Path
    report: IngestReport  # what building it reported


@pytest.fixture(scope="session")
def fake_myntra_template(
    base_settings: Settings, myntra: Path, fake_bundle: Bundle, tmp_path_factory: pytest.TempPathFactory
) -> BuiltCatalog:
    """myntra-dev ingested once per run with the fake model, with KNOWN_CALIBRATIONS as its decision (so tests
    know exactly what the decision must be). Never opened by a test: fake_myntra gives each test its own copy."""
    settings = base_settings.model_copy(update={"data_dir": tmp_path_factory.mktemp("fake-myntra") / "data"})
    catalog = Catalog.open(settings, model=str(fake_bundle.folder), create=True, embedders=FakeEmbedders())
    try:
        report = catalog.ingester().ingest_file(myntra / "catalog.csv", MYNTRA_COLUMNS)
        catalog.store.set_meta(DECISION_KEY, to_meta(KNOWN_CALIBRATIONS))
    finally:
        catalog.close()
    return BuiltCatalog(settings.data_dir, report)


@pytest.fixture
def fake_myntra(fake_myntra_template: BuiltCatalog, settings: Settings) -> Settings:
    """Settings of this test's own copy of the fake-model myntra-dev catalog (SQLite + FAISS files: a copy is a
    few milliseconds), so a test may change it without touching any other test."""
    shutil.copytree(fake_myntra_template.data_dir, settings.data_dir)
    return settings


@pytest.fixture
def cli_env(settings: Settings) -> dict[str, str]:
    """Environment for running the CLI in a subprocess against this test's data dir."""
    return {
        **os.environ,
        "PRODMATCH_MODELS_DIR": str(settings.models_dir),
        "PRODMATCH_DATA_DIR": str(settings.data_dir),
        "COLUMNS": "200",
    }


@pytest.fixture(scope="session")
def triton_repository(
    offline_bundle: Bundle, clip_random_bundle: Bundle, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """Both test bundles exported for Triton's Python backend: the only backend in the tritonserver that
    nvidia-pytriton ships (tests/servers.py); model.py runs the same ONNX graphs with ONNX Runtime."""
    from prodmatch.models.triton.repository import RepositoryOptions, write_triton_repository

    repository = tmp_path_factory.mktemp("triton-repository")
    for bundle in (offline_bundle, clip_random_bundle):
        write_triton_repository(bundle, repository, RepositoryOptions(backend="python", intra_op_threads=1))
    return repository


_NAMES = itertools.count()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    yield server
    server.close()


@pytest.fixture(scope="session")
def mongo_server() -> Iterator[MongoWireServer]:
    server = MongoWireServer()
    yield server
    server.close()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    yield server
    server.close()


def database_name(request: pytest.FixtureRequest) -> str:
    """A database name unique to this test (and valid everywhere: lower case, digits, underscores)."""
    return f"t{next(_NAMES)}_" + re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:40]


StoreUrl = Callable[[str], str]


@pytest.fixture
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> StoreUrl:
    """store_url(KIND): a URL of a fresh, empty store of that kind for this test (servers start on first use)."""

    def make(kind: str) -> str:
        if kind == "sqlite":
            return f"sqlite:///{tmp_path / 'metadata.db'}"
        if kind == "faiss":
            return f"faiss://{tmp_path / 'faiss'}"
        if kind == "qdrant+local":
            return f"qdrant+local://{tmp_path / 'qdrant'}"
        if kind == "mongodb":
            return str(request.getfixturevalue("mongo_server").url(database_name(request)))
        postgres: PostgresServer = request.getfixturevalue("postgres_server")
        url = postgres.create_database(database_name(request))
        return url if kind == "postgresql" else url.replace("postgresql://", "pgvector://", 1)

    return make

"""Settings, read once from the environment (prefix PRODMATCH_) and passed down explicitly."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_models_dir() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "prodmatch" / "models"


@dataclass(frozen=True)
class CatalogLocation:
    """Where one catalog's data lives: a folder (thumbnails, uploads) and the two stores.

    Every code path that opens a catalog is given one of these, so where its writes go is explicit: the
    configured catalog (Settings.location()) or a private one (embedded()) that nothing else can reach.
    """

    folder: Path
    metadata_url: str
    vectors_url: str

    @classmethod
    def embedded(cls, folder: Path) -> CatalogLocation:
        """A catalog wholly inside FOLDER (SQLite + FAISS files), whatever the environment and flags say."""
        folder = Path(folder).resolve()
        return cls(folder, f"sqlite:///{folder / 'metadata.db'}", f"faiss://{folder}")

    @property
    def is_embedded_in_folder(self) -> bool:
        """True when both stores are files inside the folder (a data dir that holds everything)."""
        return self == CatalogLocation.embedded(self.folder)

    def describe(self) -> str:
        """One line naming where the data goes (passwords hidden)."""
        if self.is_embedded_in_folder:
            return f"catalog in {self.folder} (SQLite + FAISS)"
        metadata, vectors = _without_password(self.metadata_url), _without_password(self.vectors_url)
        return f"catalog with metadata at {metadata} and vectors at {vectors}"


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


class RuntimeSettings(BaseModel):
    """How model sessions use the CPU."""

    # Intra-op threads: one per core is fastest for batch inference on a dedicated host; set lower when
    # several workers share a machine. None means "all cores" (os.cpu_count()).
    intra_op_threads: int | None = None
    max_batch: int = Field(32, ge=1, description="largest batch sent to the model in one run")
    # ONNX Runtime's worker threads busy-wait after each run by default; that steals the cores FAISS and the
    # next request need (a 250-product text match went from 11 ms to 4.5 ms with it off). Turn it on for a
    # host that only runs batch inference.
    spin_wait: bool = False
    # JPEG draft decoding (DCT scaling) cuts decode time several-fold on large photos; it keeps at
    # least 2x the model's input resolution, so the resized result is visually identical.
    jpeg_draft: bool = True
    max_image_pixels: int = Field(50_000_000, description="decompression-bomb guard")


class IndexSettings(BaseModel):
    """Vector index choice: exact below the threshold, HNSW above it, unless forced."""

    kind: Literal["auto", "flat", "hnsw"] = "auto"
    exact_threshold: int = 50_000
    hnsw_m: int = 32
    hnsw_ef_construction: int = 200
    hnsw_ef_search: int = 128
    # One thread per query: concurrency comes from parallel requests, and OpenMP start-up costs more than
    # a single query's search on a small index.
    search_threads: int = 1
    # Threads for building HNSW graphs from large batches (bulk ingest, rebuilds); None = all cores. Writes never
    # overlap searches (the API holds one lock for both), so the process-wide setting is safe to raise meanwhile.
    build_threads: int | None = None


class MatchingSettings(BaseModel):
    """How scores combine (text_weight: a text query's text and image scores, shared spaces only), and learning
    from feedback."""

    text_weight: float = Field(0.5, ge=0.0, le=1.0)
    # A confirmed query photo (POST /v1/feedback) becomes one more photo of the product. Query photos are kept
    # for keep_query_photos_days so that feedback can come later; then they are deleted.
    learn_from_feedback: bool = True
    keep_query_photos_days: float = Field(7.0, ge=0)
    # Geometric verification of an image query's top verify_depth products (matching/verification.py); 0 = off.
    # 20 reaches the global search's Recall@20 ceiling on hard photos for ~5 ms (median; p95 ~14 ms) per query.
    verify_depth: int = Field(20, ge=0, le=100)
    # Local features: ORB (fast, ~10 KB per image) or SIFT (~10x slower to extract; finer on small print).
    verify_features: Literal["orb", "sift"] = "orb"
    # Region search (matching/regions.py): also search crops of the query photo; the best region wins and its box
    # is returned. It embeds several crops per photo, so it is off by default (docs/benchmarks.md).
    regions: bool = False


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


class ServeSettings(BaseModel):
    """The HTTP service."""

    host: str = "127.0.0.1"
    port: int = 8000
    max_upload_bytes: int = Field(10 * 1024 * 1024, description="larger request bodies get 413")
    max_text_chars: int = 2000
    batch_size: int = Field(16, ge=1, description="most queries embedded in one model run")
    # While the model runs, new queries queue up and form the next batch anyway; the wait only adds company
    # for a query that arrives to an idle model, so it is kept short.
    batch_wait_ms: float = Field(2.0, ge=0, description="longest a query waits for others to share its batch")
    cache_entries: int = Field(2048, ge=1, description="query embeddings kept (LRU)")
    max_json_bytes: int = Field(64 * 1024, description="larger bodies on routes without uploads get 413")
    # A model call that takes longer fails the request (503 model_timeout) instead of holding a worker forever.
    model_timeout_s: float = Field(30.0, gt=0)
    # API keys: None = required once the catalog has any key, and always when listening beyond loopback.
    require_keys: bool | None = None
    insecure_no_auth: bool = Field(False, description="serve beyond loopback without API keys (not recommended)")
    # Token buckets per API key and per client address; rate 0 turns limits off.
    rate_per_s: float = Field(50.0, ge=0)
    rate_burst: int = Field(100, ge=1)
    cors_origins: list[str] = Field(default_factory=list, description="origins allowed to call the API from a browser")
    log_level: str = "info"
    log_json: bool = True


class Settings(BaseSettings):
    """All settings. Nested fields use a double underscore: PRODMATCH_INDEX__KIND=hnsw."""

    model_config = SettingsConfigDict(env_prefix="PRODMATCH_", env_nested_delimiter="__", extra="ignore")

    data_dir: Path = Path("prodmatch-data")
    # Where the catalog lives (README, "Databases"). Unset: SQLite and FAISS files inside data_dir.
    # metadata_url: sqlite:///PATH | postgresql://USER@HOST:PORT/DB | mongodb://HOST:PORT/DB
    # vectors_url: faiss:///DIR | pgvector://USER@HOST:PORT/DB | qdrant://HOST:6333 | qdrant+local:///DIR
    metadata_url: str | None = None
    vectors_url: str | None = None
    # Where the model runs. Unset: in process (ONNX Runtime). triton://HOST:8001/NAME | triton+http://HOST:8000/NAME
    # runs the bundle's towers on a Triton server (README, "Triton").
    model_url: str | None = None
    models_dir: Path = Field(default_factory=_default_models_dir)
    # Where CLIP weights come from: a Hugging Face hub id (uses the hub cache) or a local folder.
    clip_weights: str = "openai/clip-vit-base-patch32"
    runtime: RuntimeSettings = RuntimeSettings()
    index: IndexSettings = IndexSettings()
    matching: MatchingSettings = MatchingSettings()
    serve: ServeSettings = ServeSettings()

    def location(self) -> CatalogLocation:
        """The configured catalog: the data dir, with the store URLs from flags or environment when given."""
        embedded = CatalogLocation.embedded(Path(self.data_dir))
        return CatalogLocation(
            embedded.folder, self.metadata_url or embedded.metadata_url, self.vectors_url or embedded.vectors_url
        )

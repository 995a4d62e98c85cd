"""Settings, read once from the environment (prefix PRODMATCH_) and passed down explicitly."""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import StrEnum
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


class IndexKind(StrEnum):
    """FAISS index kinds. AUTO picks by size: FLAT (exact) below exact_threshold, HNSW below ivf_threshold, IVF_SQ8
    (IVF lists of 8-bit codes, the top candidates re-scored exactly from a memory-mapped float32 file) above it."""

    AUTO = "auto"
    FLAT = "flat"
    HNSW = "hnsw"
    IVF_SQ8 = "ivf_sq8"


class IndexSettings(BaseModel):
    """Vector index choice: exact below the threshold, HNSW above it, IVF-SQ8 for large catalogs, unless forced."""

    kind: IndexKind = IndexKind.AUTO
    exact_threshold: int = 50_000
    hnsw_m: int = 32
    hnsw_ef_construction: int = 200
    hnsw_ef_search: int = 128
    # Past ~200k vectors an HNSW graph costs too much to build (1M: ~20 CPU-min), to hold (2.3 GB) and to open,
    # and it cannot delete; IVF-SQ8 with re-ranking reaches the same recall at a quarter of the memory.
    ivf_threshold: int = 200_000
    ivf_nlist: int | None = Field(None, description="IVF lists; None: about 4*sqrt(n), a power of two")
    ivf_nprobe: int = Field(16, ge=1, description="lists searched per query (raised by 1/fraction for filters)")
    ivf_k_factor: int = Field(4, ge=1, description="candidates re-scored exactly per result wanted")
    ivf_train_size: int = Field(200_000, ge=1000, description="vectors sampled to train the IVF lists")
    # A filter that keeps at most this many vectors of an IVF index is scored exactly over them (~0.8 us/row).
    ivf_exact_filter_max: int = 10_000
    # One thread per query: concurrency comes from parallel requests, and OpenMP start-up costs more than
    # a single query's search on a small index.
    search_threads: int = 1
    # Threads for building indexes from large batches (bulk ingest, rebuilds); None = all cores. Writes never
    # overlap searches (the API holds one lock for both), so the process-wide setting is safe to raise meanwhile.
    build_threads: int | None = None


class MatchingSettings(BaseModel):
    """How scores combine (text_weight: a text query's text and image scores, shared spaces only), and learning
    from feedback."""

    text_weight: float = Field(0.5, ge=0.0, le=1.0)
    # Hybrid text search (README, "How matching works"): a text query's score is
    #   (dense * cosine + lexical * BM25 share + attributes * share of named values held) / (sum of weights used)
    # in [0, 1]; the attribute term (and its weight) counts only when the query names a catalog attribute value.
    # hybrid_text off: text queries rank by the dense cosine alone (as before).
    hybrid_text: bool = True
    hybrid_dense_weight: float = Field(0.3, ge=0.0)
    hybrid_lexical_weight: float = Field(0.7, ge=0.0)
    hybrid_attribute_weight: float = Field(1.0, ge=0.0)
    lexical_depth: int = Field(50, ge=1, description="products taken from each of the dense and lexical searches")
    # A confirmed query photo (POST /v1/feedback) becomes one more photo of the product. Query photos are kept
    # for keep_query_photos_days so that feedback can come later; then they are deleted.
    learn_from_feedback: bool = True
    # Calibration asks confirmed photos again against today's catalog, leave-one-out (matching/replay.py), instead of
    # using the scores logged when they were answered (before any photo was learned).
    replay_feedback: bool = False
    keep_query_photos_days: float = Field(7.0, ge=0)
    # Geometric verification of an image query's top verify_depth products (matching/verification.py); 0 = off.
    # Hard myntra-dev photos: R@1 0.952 at 20, 0.980 at 50, for the same median cost (+7 ms CPU: the right product
    # stops the checks early); photos of unknown products pay for every check.
    verify_depth: int = Field(50, ge=0, le=100)
    # Local features: ORB (fast, ~10 KB per image) or SIFT (~10x slower to extract; finer on small print).
    verify_features: Literal["orb", "sift"] = "orb"
    # Colour re-ranking (matching/colour.py): a verified photo query's top products gain weight x the Bhattacharyya
    # similarity of their best photo's colour histogram to the query's: colour_weight for catalog (studio) photos,
    # learned_colour_weight for photos learned from feedback (customer photos, taken under the same shop light as
    # the query, so their colour is worth more: grocery-dev, docs/benchmarks.md). Both 0 = off.
    colour_weight: float = Field(0.05, ge=0.0, le=1.0)
    learned_colour_weight: float = Field(0.2, ge=0.0, le=1.0)
    # Region search (matching/regions.py): also search crops of the query photo; the best region wins and its box
    # is returned. It embeds several crops per photo, so it is off by default (docs/benchmarks.md).
    regions: bool = False


class DownloadSettings(BaseModel):
    """Image URLs in a catalog (prodmatch download / ingest): limits, retries and the SSRF allow-list."""

    concurrency: int = Field(32, ge=1, description="URLs fetched at once")
    per_host: int = Field(4, ge=1, description="requests at once to one host")
    connect_timeout_s: float = Field(10.0, gt=0)
    read_timeout_s: float = Field(30.0, gt=0)
    max_attempts: int = Field(4, ge=1, description="tries per URL on transient failures (connect errors, 429, 5xx)")
    max_redirects: int = Field(5, ge=0)
    max_bytes: int = Field(25 * 1024 * 1024, ge=1, description="larger images are refused while streaming")
    # Loopback, private, link-local and metadata addresses are refused unless listed here (CIDR or host name);
    # PRODMATCH_DOWNLOAD__ALLOW_HOSTS='["10.1.2.0/24"]'. Never list a whole private range you do not own.
    allow_hosts: list[str] = Field(default_factory=list)
    # Refetch URLs an earlier run found permanently broken or refused (404, not an image...).
    retry_failed: bool = False


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
    cache_ttl_s: float = Field(86400.0, gt=0, description="how long a query embedding stays in a Redis cache")
    # Worker processes for `prodmatch serve` (each loads the model; they share the data dir, and the query
    # embedding cache when cache_url is set).
    workers: int = Field(1, ge=1)
    max_json_bytes: int = Field(64 * 1024, description="larger bodies on routes without uploads get 413")
    # A body trickled in slower than this (or stalled) gets 408 instead of holding a connection indefinitely.
    body_timeout_s: float = Field(30.0, gt=0, description="longest a request body may take to arrive")
    # A model call that takes longer fails the request (503 model_timeout) instead of holding a worker forever.
    model_timeout_s: float = Field(30.0, gt=0)
    # API keys: None = required once the catalog has any key, and always when listening beyond loopback.
    require_keys: bool | None = None
    insecure_no_auth: bool = Field(False, description="serve beyond loopback without API keys (not recommended)")
    # Token buckets per API key and per client address; rate 0 turns limits off.
    rate_per_s: float = Field(50.0, ge=0)
    rate_burst: int = Field(100, ge=1)
    cors_origins: list[str] = Field(default_factory=list, description="origins allowed to call the API from a browser")
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    log_json: bool = True
    # Drop-in routes for clients written against the designs prodmatch replaces (README, "Coming from ..."): off, so
    # the documented API stays /v1/... unless a deployment asks for them.
    compat_routes: bool = False


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
    # The query-embedding cache the API uses. Unset: an LRU in each process. redis://HOST:6379/0: one Redis that
    # every worker (and host) shares (the redis extra).
    cache_url: str | None = None
    # Where CLIP weights come from: a Hugging Face hub id (uses the hub cache) or a local folder.
    clip_weights: str = "openai/clip-vit-base-patch32"
    runtime: RuntimeSettings = RuntimeSettings()
    index: IndexSettings = IndexSettings()
    matching: MatchingSettings = MatchingSettings()
    serve: ServeSettings = ServeSettings()
    download: DownloadSettings = DownloadSettings()

    def location(self) -> CatalogLocation:
        """The configured catalog: the data dir, with the store URLs from flags or environment when given."""
        embedded = CatalogLocation.embedded(Path(self.data_dir))
        return CatalogLocation(
            embedded.folder, self.metadata_url or embedded.metadata_url, self.vectors_url or embedded.vectors_url
        )

"""The download manifest: one SQLite row per URL, committed as each URL finishes, and the run summary.

Rows are keyed by sha256 of the full URL; only a redacted form of the URL (no userinfo, no query values) is
stored, so the manifest can be shared without leaking feed credentials. WAL mode with synchronous=NORMAL makes
each commit durable against a killed process (the WAL is in the OS page cache) without an fsync per URL; a
power cut may lose the last few rows, whose files are then simply fetched again (names are content hashes).
"""

from __future__ import annotations

import math
import sqlite3
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any

from prodmatch.errors import ProdmatchError

SCHEMA_VERSION = 1
_COLUMNS = (
    "key",
    "url",
    "status",
    "http_status",
    "bytes",
    "latency_ms",
    "content_type",
    "sha256",
    "path",
    "error_kind",
    "error",
    "attempts",
    "finished_at",
    "final_url",
)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS downloads (
    key TEXT PRIMARY KEY,          -- sha256 of the full URL
    url TEXT NOT NULL,             -- redacted for display
    status TEXT NOT NULL,          -- ok | failed_transient | failed_permanent | refused
    http_status INTEGER,
    bytes INTEGER NOT NULL,
    latency_ms REAL NOT NULL,      -- wall time for the URL, all attempts and redirects
    content_type TEXT,
    sha256 TEXT,
    path TEXT,                     -- relative to dest: <sha[:2]>/<sha>.<ext>
    error_kind TEXT,
    error TEXT,
    attempts INTEGER NOT NULL,
    finished_at TEXT NOT NULL,     -- ISO 8601, UTC
    final_url TEXT                 -- redacted, after redirects
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS downloads_status ON downloads(status);
"""


class DownloadError(ProdmatchError):
    """A download batch cannot run (destination in use, manifest unreadable or from a newer version)."""


class Status(StrEnum):
    OK = "ok"
    FAILED_TRANSIENT = "failed_transient"  # may succeed later: rerun fetches it again
    FAILED_PERMANENT = "failed_permanent"  # 404, redirect loop...: rerun skips it unless told otherwise
    REFUSED = "refused"  # policy: blocked address or scheme, not an image, over the size cap


@dataclass(frozen=True)
class ManifestRecord:
    """The outcome for one URL, as stored."""

    key: str
    url: str
    status: Status
    attempts: int
    finished_at: str
    latency_ms: float
    size_bytes: int = 0
    http_status: int | None = None
    content_type: str | None = None
    sha256: str | None = None
    path: str | None = None
    error_kind: str | None = None
    error: str | None = None
    final_url: str | None = None

    def row(self) -> tuple[Any, ...]:
        values = asdict(self)
        values["bytes"] = values.pop("size_bytes")
        values["status"] = str(self.status)
        return tuple(values[c] for c in _COLUMNS)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> ManifestRecord:
        values = {c: row[c] for c in _COLUMNS}
        values["size_bytes"] = values.pop("bytes")
        values["status"] = Status(values["status"])
        return cls(**values)


class Manifest:
    """The SQLite manifest file; one connection, used from the event-loop thread only."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(path, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            self._setup()
        except sqlite3.DatabaseError as exc:
            raise DownloadError(f"cannot open download manifest {path}: {exc}") from exc

    def _setup(self) -> None:
        # busy_timeout first: the shards of a Ray download open one manifest at once
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise DownloadError(f"manifest schema {version} is newer than this prodmatch ({SCHEMA_VERSION})")
        self._db.executescript(_SCHEMA)
        self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def __enter__(self) -> Manifest:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def get(self, key: str) -> ManifestRecord | None:
        row = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM downloads WHERE key = ?", (key,)).fetchone()
        return None if row is None else ManifestRecord.from_row(row)

    def put(self, record: ManifestRecord) -> None:
        """Insert or replace the row for `record.key`; committed before returning (autocommit)."""
        placeholders = ", ".join("?" for _ in _COLUMNS)
        self._db.execute(
            f"INSERT OR REPLACE INTO downloads ({', '.join(_COLUMNS)}) VALUES ({placeholders})", record.row()
        )

    def records(self) -> Iterator[ManifestRecord]:
        for row in self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM downloads ORDER BY key"):
            yield ManifestRecord.from_row(row)


@dataclass(frozen=True)
class DownloadSummary:
    """One batch: final status of each distinct URL asked for, and what this run itself fetched.

    `by_status`, `by_error_kind` and `success_ratio` cover every distinct URL of the batch (those skipped
    because an earlier run settled them count with their stored outcome); `downloaded_bytes` and the
    latencies cover only the URLs fetched in this run.
    """

    total: int
    fetched: int
    skipped: int
    by_status: dict[str, int]
    by_error_kind: dict[str, int]
    success_ratio: float
    downloaded_bytes: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SummaryBuilder:
    """Accumulates records into a DownloadSummary."""

    fetched: int = 0
    skipped: int = 0
    downloaded_bytes: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    error_kinds: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)

    def add(self, record: ManifestRecord, *, fetched: bool) -> None:
        self.statuses[str(record.status)] += 1
        if record.error_kind:
            self.error_kinds[record.error_kind] += 1
        if not fetched:
            self.skipped += 1
            return
        self.fetched += 1
        self.downloaded_bytes += record.size_bytes
        self.latencies.append(record.latency_ms)

    def merge(self, other: SummaryBuilder) -> None:
        """Count OTHER's URLs too (another shard of the same batch)."""
        self.fetched += other.fetched
        self.skipped += other.skipped
        self.downloaded_bytes += other.downloaded_bytes
        self.statuses.update(other.statuses)
        self.error_kinds.update(other.error_kinds)
        self.latencies.extend(other.latencies)

    def build(self) -> DownloadSummary:
        total = self.fetched + self.skipped
        ordered = sorted(self.latencies)
        return DownloadSummary(
            total=total,
            fetched=self.fetched,
            skipped=self.skipped,
            by_status={s.value: self.statuses[s.value] for s in Status},
            by_error_kind=dict(self.error_kinds.most_common()),
            success_ratio=self.statuses[Status.OK.value] / total if total else 1.0,
            downloaded_bytes=self.downloaded_bytes,
            latency_p50_ms=percentile(ordered, 50),
            latency_p95_ms=percentile(ordered, 95),
        )


def percentile(ordered: list[float], pct: float) -> float | None:
    """Linear-interpolated percentile of already sorted values; None when there are none."""
    if not ordered:
        return None
    rank = (len(ordered) - 1) * pct / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize_manifest(path: Path) -> DownloadSummary:
    """A summary of every row in a manifest (e.g. for a `status` command), all counted as fetched."""
    builder = SummaryBuilder()
    with Manifest(path) as manifest:
        for record in manifest.records():
            builder.add(record, fetched=True)
    return builder.build()

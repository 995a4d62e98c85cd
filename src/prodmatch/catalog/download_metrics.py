"""Prometheus counters for catalog downloads, on a registry the caller owns (no module-level metrics).

registry = prometheus_client.CollectorRegistry()
download(urls, dest, manifest, options, on_progress=DownloadMetrics(registry))
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from prodmatch.catalog.download import Progress

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class DownloadMetrics:
    """A progress callback that counts URLs by status and error kind, bytes, and per-URL latency."""

    def __init__(self, registry: CollectorRegistry, prefix: str = "prodmatch_catalog_download") -> None:
        self.urls = Counter(f"{prefix}_urls", "URLs settled, by outcome", ["status", "error_kind"], registry=registry)
        self.skipped = Counter(f"{prefix}_skipped_urls", "URLs an earlier run had already settled", registry=registry)
        self.bytes = Counter(f"{prefix}_bytes", "Image bytes downloaded", registry=registry)
        self.latency = Histogram(
            f"{prefix}_latency_seconds", "Wall time per URL, all tries", registry=registry, buckets=_LATENCY_BUCKETS
        )

    def __call__(self, progress: Progress) -> None:
        if not progress.fetched:
            self.skipped.inc()
            return
        record = progress.record
        self.urls.labels(status=str(record.status), error_kind=record.error_kind or "").inc()
        self.bytes.inc(record.size_bytes)
        self.latency.observe(record.latency_ms / 1000)

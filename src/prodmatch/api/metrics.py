"""Prometheus metrics, in a registry owned by the app (no process-global collectors)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 2.5)
# Stages run from tens of microseconds (decide, log) to tens of milliseconds (model).
STAGE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "prodmatch_requests_total", "HTTP requests", ["route", "method", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "prodmatch_request_seconds",
            "HTTP request latency",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "prodmatch_embed_batch_size",
            "queries per model run",
            ["modality"],
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=self.registry,
        )
        self.cache = Counter(
            "prodmatch_embedding_cache_total", "query embedding cache lookups", ["result"], registry=self.registry
        )
        self.index_size = Gauge("prodmatch_index_vectors", "vectors in each index", ["space"], registry=self.registry)
        self.products = Gauge("prodmatch_products", "products in the catalog", registry=self.registry)
        self.stages = Histogram(
            "prodmatch_stage_seconds",
            "time per stage of a match query (decode, preprocess, model, search, decide, log)",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=self.registry,
        )
        self.query_log_dropped = Gauge(
            "prodmatch_query_log_dropped", "query log entries not written", registry=self.registry
        )

    def observe_stages(self, timings_ms: dict[str, float]) -> None:
        """One query's per-stage milliseconds into the stage histogram."""
        for stage, ms in timings_ms.items():
            self.stages.labels(stage).observe(ms / 1000)

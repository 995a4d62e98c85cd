"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from prodmatch.api.deps import RawState
from prodmatch.api.state import AppState
from prodmatch.errors import ModelServerUnavailableError, StoreUnavailableError
from prodmatch.stores.availability import unavailable_reason

router = APIRouter(tags=["health"])


@router.get("/health")
async def health() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/ready")
async def ready(state: RawState) -> JSONResponse:
    """Catalog open, model serving (a Triton server's health included) and every store reachable; 503 with
    each part's state otherwise."""
    try:
        await state.ensure_open()
    except (StoreUnavailableError, ModelServerUnavailableError) as exc:
        return JSONResponse({"ready": False, "parts": {"catalog": {"ok": False, "error": str(exc)}}}, status_code=503)
    catalog = state.catalog
    record = catalog.record
    model = {"name": record.name, "fingerprint": record.fingerprint, "runs_on": state.settings.model_url or "process"}
    problem = await state.run(catalog.embedder().health)
    parts: dict[str, Any] = {"model": {"ok": problem is None, **model, **({"error": problem} if problem else {})}}
    parts["metadata"] = await _probe(state, catalog.store.count, "products")
    for space in record.spaces:
        parts[f"vectors_{space}"] = await _probe(state, catalog.stores.index(space).__len__, "vectors")
    ok = all(part["ok"] for part in parts.values())
    return JSONResponse({"ready": ok, "parts": parts}, status_code=200 if ok else 503)


async def _probe(state: AppState, count: Callable[[], int], what: str) -> dict[str, Any]:
    try:
        return {"ok": True, what: await state.run(count)}
    except Exception as exc:
        if (reason := unavailable_reason(exc)) is None:
            raise
        return {"ok": False, "error": reason}


@router.get("/metrics")
async def metrics(state: RawState) -> Response:
    """Prometheus text format (catalog gauges only while the catalog is reachable)."""
    if state.is_open:
        with contextlib.suppress(Exception):  # a store being down must not hide the request metrics
            catalog = state.catalog
            state.metrics.products.set(await state.run(catalog.store.count))
            for space in catalog.record.spaces:
                state.metrics.index_size.labels(space).set(await state.run(catalog.stores.index(space).__len__))
        state.metrics.query_log_dropped.set(state.query_log.dropped)
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

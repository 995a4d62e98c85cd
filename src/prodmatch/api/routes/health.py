"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import SQLAlchemyError

from prodmatch.api.deps import State

router = APIRouter(tags=["health"])


@router.get("/health")
async def health() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/ready")
async def ready(state: State) -> JSONResponse:
    """Model loaded and stores reachable; 503 with each part's state otherwise."""
    parts: dict[str, Any] = {
        "model": {"ok": True, "name": state.datadir.record.name, "fingerprint": state.datadir.record.fingerprint}
    }
    try:
        parts["metadata"] = {"ok": True, "products": await state.run(state.datadir.store.count)}
    except SQLAlchemyError as exc:
        parts["metadata"] = {"ok": False, "error": type(exc).__name__}
    parts["indexes"] = {"ok": True, **{space: len(state.datadir.index(space)) for space in state.datadir.record.spaces}}
    ok = all(part["ok"] for part in parts.values())
    return JSONResponse({"ready": ok, "parts": parts}, status_code=200 if ok else 503)


@router.get("/metrics")
async def metrics(state: State) -> Response:
    """Prometheus text format."""
    state.metrics.products.set(await state.run(state.datadir.store.count))
    for space in state.datadir.record.spaces:
        state.metrics.index_size.labels(space).set(len(state.datadir.index(space)))
    state.metrics.query_log_dropped.set(state.query_log.dropped)
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

"""The FastAPI app factory. Resources (model, stores, batchers) are built in the lifespan, never at import."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles

from prodmatch import __version__
from prodmatch.api.errors import BodySizeLimit, install_error_handlers
from prodmatch.api.routes import health, match, products, ui
from prodmatch.api.state import AppState
from prodmatch.config import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    """The prodmatch HTTP app for SETTINGS (read from the environment when not given)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = AppState(settings)
        await state.start()
        app.state.prodmatch = state
        try:
            yield
        finally:
            await state.stop()

    app = FastAPI(
        title="prodmatch",
        version=__version__,
        lifespan=lifespan,
        description="Match product photos and descriptions against a catalog.",
    )
    for router in (health.router, match.router, products.router, products.facets_router, ui.router):
        app.include_router(router)
    app.mount("/ui", StaticFiles(directory=ui.STATIC), name="ui")
    install_error_handlers(app)
    app.middleware("http")(_record_metrics)
    app.add_middleware(BodySizeLimit, max_bytes=settings.serve.max_upload_bytes)
    return app


async def _record_metrics(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """Count and time each request under its route template (not the raw path: ids would explode the labels)."""
    started = time.perf_counter()
    response = await call_next(request)
    route = getattr(request.scope.get("route"), "path", "unmatched")  # set by the router once it matched
    state = getattr(request.app.state, "prodmatch", None)
    if state is not None:
        state.metrics.requests.labels(route, request.method, str(response.status_code)).inc()
        state.metrics.latency.labels(route, request.method).observe(time.perf_counter() - started)
    return response

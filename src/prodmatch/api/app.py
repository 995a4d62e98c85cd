"""The FastAPI app factory. Resources (model, stores, batchers) are built in the lifespan, never at import."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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
    app.add_middleware(RequestMetrics)
    app.add_middleware(BodySizeLimit, max_bytes=settings.serve.max_upload_bytes)
    return app


class RequestMetrics:
    """Counts and times each request under its route template (raw paths would explode the label set).

    A plain ASGI middleware: Starlette's BaseHTTPMiddleware costs milliseconds per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = ["500"]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = str(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            state = getattr(scope["app"].state, "prodmatch", None)
            if state is not None:
                route = getattr(scope.get("route"), "path", "unmatched")  # set by the router once it matched
                state.metrics.requests.labels(route, scope["method"], status[0]).inc()
                state.metrics.latency.labels(route, scope["method"]).observe(time.perf_counter() - started)

"""The FastAPI app factory. Resources (model, stores, batchers) are built in the lifespan, never at import."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from prodmatch import __version__
from prodmatch.api.errors import BodySizeLimit, install_error_handlers
from prodmatch.api.metrics import Metrics
from prodmatch.api.observability import RequestContext
from prodmatch.api.openapi import install_openapi
from prodmatch.api.routes import compat, feedback, health, match, products, ui
from prodmatch.api.state import AppState
from prodmatch.composition import EmbedderFactory
from prodmatch.config import Settings
from prodmatch.models.factory import create_embedder

# `prodmatch serve --workers N` hands each worker process the exact settings it was given (flags included) here.
SETTINGS_ENV = "PRODMATCH_SERVE_SETTINGS_JSON"


def serve_settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes create_app_from_environment build an app for SETTINGS in a worker process."""
    return {SETTINGS_ENV: settings.model_dump_json()}


def create_app_from_environment() -> FastAPI:
    """The app factory uvicorn's worker processes call (an import string: workers cannot be handed an app
    object). model_validate_json bypasses the environment sources, so each worker runs with exactly the parent's
    settings."""
    from prodmatch.api.observability import configure_logging

    raw = os.environ.get(SETTINGS_ENV)
    settings = Settings.model_validate_json(raw) if raw else Settings()
    configure_logging(settings.serve.log_level, settings.serve.log_json)
    return create_app(settings)


def create_app(settings: Settings | None = None, embedders: EmbedderFactory = create_embedder) -> FastAPI:
    """The prodmatch HTTP app for SETTINGS (read from the environment when not given). EMBEDDERS makes the
    catalog's model from its bundle (the real runtimes unless a caller, such as a test, brings its own)."""
    settings = settings or Settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = AppState(settings, metrics, embedders)
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
    routers = [health.router, match.router, feedback.router, products.router, products.facets_router, ui.router]
    if settings.serve.compat_routes:  # the seed designs' routes, for their existing clients (README)
        routers += [compat.router, compat.detail_router]
        app.add_exception_handler(compat.JsonTooLarge, compat.too_large)
    for router in routers:
        app.include_router(router)
    app.mount("/ui", StaticFiles(directory=ui.STATIC), name="ui")
    install_error_handlers(app)
    install_openapi(app)
    app.add_middleware(
        BodySizeLimit,
        limit_for=body_limits(settings),
        timeout_s=settings.serve.body_timeout_s,
        detail_paths=compat.DETAIL_PATHS if settings.serve.compat_routes else frozenset(),
    )
    if settings.serve.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.serve.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    app.add_middleware(RequestContext, metrics=metrics)  # outermost: every response gets its id and headers
    return app


# Routes that take a photo upload (multipart): everything else is JSON or has no body. /search (compat) takes a
# photo or JSON: it checks a JSON body against the JSON limit itself. Product ids may hold "/".
_UPLOADS = re.compile(r"^/v1/match(/image)?$|^/v1/products/.+$|^/(match-product|match-image|search)$")


def body_limits(settings: Settings) -> Callable[[str, str], int]:
    """The body limit of each route: the upload limit for photo uploads, the JSON limit for the rest."""
    serve = settings.serve

    def limit_for(method: str, path: str) -> int:
        uploads = method in ("POST", "PUT") and _UPLOADS.match(path)
        return serve.max_upload_bytes if uploads else serve.max_json_bytes

    return limit_for

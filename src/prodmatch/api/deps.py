"""Dependency aliases for route signatures."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Query, Request

from prodmatch.api.state import AppState
from prodmatch.application.keys import Scope
from prodmatch.errors import PermissionDeniedError
from prodmatch.matching.service import MAX_TOP_K
from prodmatch.stores.filters import Filter, parse_filters


def get_raw_state(request: Request) -> AppState:
    """The app state, whether or not its catalog could be opened (for /ready and /metrics)."""
    state: AppState = request.app.state.prodmatch
    return state


async def get_state(request: Request) -> AppState:
    """The app state with its catalog open; 503 (StoreUnavailableError) while a store is unreachable."""
    state = get_raw_state(request)
    await state.ensure_open()
    return state


def get_filters(
    filter: Annotated[list[str] | None, Query(description="KEY=VALUE, KEY>=NUM ... (repeatable)")] = None,
) -> list[Filter]:
    return parse_filters(filter)


def allow(scope: Scope) -> Callable[[Request], Awaitable[None]]:
    """A dependency admitting requests whose key grants SCOPE (when keys are required) and that are within their
    rate limits; 401, 403 or 429 otherwise. Keys live in the catalog's store, so the catalog is opened first."""

    async def admit(request: Request) -> None:
        state = await get_state(request)
        await state.run(state.gate.admit, request, scope)

    return admit


async def single_writer(request: Request) -> None:
    """Catalog writes (products, learned photos) need one server process: each worker holds its own copy of the
    vector index, which a write in one would leave stale in the others. 403 with several workers."""
    state = get_raw_state(request)
    if state.settings.serve.workers > 1:
        raise PermissionDeniedError(
            f"this server runs {state.settings.serve.workers} workers over a read-only catalog: change products "
            f"with `prodmatch ingest` or a server started with --workers 1"
        )


State = Annotated[AppState, Depends(get_state)]
RawState = Annotated[AppState, Depends(get_raw_state)]
Filters = Annotated[list[Filter], Depends(get_filters)]
TopK = Annotated[int, Query(ge=1, le=MAX_TOP_K, description="number of products")]

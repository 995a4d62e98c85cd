"""The catalog: /v1/products (paged, filterable), one product, its image, delete."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, Response

from prodmatch.api.deps import Filters, State
from prodmatch.api.schemas import ProductOut, ProductPage
from prodmatch.errors import NotFoundError
from prodmatch.stores.filters import check_keys
from prodmatch.stores.records import Product

router = APIRouter(prefix="/v1/products", tags=["products"])


def find(state: State, product_id: str) -> Product:
    product = state.datadir.store.get([product_id]).get(product_id)
    if product is None:
        raise NotFoundError(f"no product with id {product_id!r}")
    return product


@router.get("", response_model=ProductPage)
async def list_products(
    state: State,
    filters: Filters,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> ProductPage:
    check_keys(filters, state.datadir.store.attribute_keys())
    store = state.datadir.store
    items = await state.run(store.page, offset, limit, filters)
    total = await state.run(store.count, filters)
    return ProductPage(total=total, offset=offset, items=[ProductOut(id=p.id, product=p.as_dict()) for p in items])


@router.get("/{product_id}", response_model=ProductOut)
async def get_product(state: State, product_id: str) -> ProductOut:
    product = find(state, product_id)
    return ProductOut(id=product.id, product=product.as_dict())


@router.get("/{product_id}/image", response_class=FileResponse)
async def product_image(state: State, product_id: str, n: Annotated[int, Query(ge=0)] = 0) -> FileResponse:
    product = find(state, product_id)
    if n >= len(product.images) or not Path(product.images[n].path).is_file():
        raise NotFoundError(f"product {product_id!r} has no image {n}")
    return FileResponse(product.images[n].path)


@router.delete("/{product_id}", status_code=204)
async def delete_product(state: State, product_id: str) -> Response:
    find(state, product_id)

    def delete() -> None:
        with state.catalog_lock:
            state.datadir.delete(product_id)
            state.datadir.save()
            state.service.refresh()

    await state.run(delete)
    return Response(status_code=204)

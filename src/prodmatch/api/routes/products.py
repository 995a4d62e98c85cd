"""The catalog: /v1/products (paged, filterable), one product, its image and thumbnail, online upsert, delete."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from fastapi.responses import FileResponse, Response

from prodmatch.api.deps import Filters, State, allow, single_writer
from prodmatch.api.schemas import ProductOut, ProductPage
from prodmatch.application.products import delete_product, get_product, upsert_product
from prodmatch.errors import InvalidQueryError, NotFoundError
from prodmatch.stores.filters import check_keys
from prodmatch.stores.records import Product

router = APIRouter(prefix="/v1/products", tags=["products"])
facets_router = APIRouter(tags=["products"], dependencies=[Depends(allow("match"))])
CanRead = [Depends(allow("match"))]
CanWrite = [Depends(allow("admin")), Depends(single_writer)]
# Beyond any catalog's size; bounded so the store never sees a number its integers cannot hold.
MAX_OFFSET = 2**31 - 1
# Ids may hold "/" (many catalogs' SKUs do): the routes take the rest of the path, so the image and thumbnail
# routes are declared before the product itself.


def product_out(product: Product) -> ProductOut:
    return ProductOut(id=product.id, product=product.as_dict())


@router.get("", response_model=ProductPage, dependencies=CanRead)
async def list_products(
    state: State,
    filters: Filters,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> ProductPage:
    catalog = state.catalog
    check_keys(filters, await state.run(catalog.facts.attribute_keys))
    items = await state.run(catalog.store.page, offset, limit, filters)
    total = await state.run(catalog.store.count, filters)
    return ProductPage(total=total, offset=offset, items=[product_out(p) for p in items])


@facets_router.get("/v1/facets")
async def facets(state: State) -> dict[str, Any]:
    """The catalog's filterable attribute columns and their values: what the UI builds its filters from."""
    return {"facets": await state.run(state.catalog.facts.facets)}


@router.get("/{product_id:path}/image", response_class=FileResponse, dependencies=CanRead)
async def product_image(state: State, product_id: str, n: Annotated[int, Query(ge=0, le=1000)] = 0) -> FileResponse:
    product = await state.run(get_product, state.catalog, product_id)
    if n >= len(product.images) or not Path(product.images[n].path).is_file():
        raise NotFoundError(f"product {product_id!r} has no image {n}")
    return FileResponse(product.images[n].path)


@router.get("/{product_id:path}/thumbnail", response_class=FileResponse, dependencies=CanRead)
async def product_thumbnail(state: State, product_id: str, n: Annotated[int, Query(ge=0, le=1000)] = 0) -> FileResponse:
    """A small JPEG (made at ingest; made now for images ingested before thumbnails existed)."""
    catalog = state.catalog
    product = await state.run(get_product, catalog, product_id)
    if n >= len(product.images):
        raise NotFoundError(f"product {product_id!r} has no image {n}")
    ref = product.images[n]
    path = catalog.files.thumbnail_path(ref.sha256)
    if not path.is_file():
        image = await state.run(catalog.decode, Path(ref.path))
        await state.run(catalog.files.save_thumbnail, ref.sha256, image)
    return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "public, max-age=86400"})


@router.get("/{product_id:path}", response_model=ProductOut, dependencies=CanRead)
async def get_one(state: State, product_id: str) -> ProductOut:
    return product_out(await state.run(get_product, state.catalog, product_id))


@router.put("/{product_id:path}", response_model=ProductOut, dependencies=CanWrite)
async def put_product(
    state: State,
    product_id: str,
    fields: Annotated[str, Form(description='JSON object: {"name": ..., "description": ..., any attributes}')] = "{}",
    image: Annotated[UploadFile | None, File(description="the product photo (kept as is when omitted)")] = None,
) -> ProductOut:
    """Create or replace a product; it is matched by the next query, no restart needed."""
    data = await image.read() if image is not None else None
    product = await state.run(upsert_product, state.catalog, product_id, _parse_fields(fields), data)
    return product_out(product)


def _parse_fields(fields: str) -> dict[str, Any]:
    try:
        parsed = json.loads(fields)
    except json.JSONDecodeError as exc:
        raise InvalidQueryError(f"fields is not valid JSON: {exc.msg}") from exc
    if not isinstance(parsed, dict):
        raise InvalidQueryError("fields must be a JSON object")
    return parsed


@router.delete("/{product_id:path}", status_code=204, dependencies=CanWrite)
async def delete_one(state: State, product_id: str) -> Response:
    await state.run(delete_product, state.catalog, product_id)
    return Response(status_code=204)

"""The catalog: /v1/products (paged, filterable), one product, its image, delete."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import FileResponse, Response

from prodmatch.api.deps import Filters, State
from prodmatch.api.schemas import ProductOut, ProductPage
from prodmatch.catalog.ingest import CatalogIngester, IngestReport
from prodmatch.catalog.readers import RawRow
from prodmatch.catalog.schema import ColumnMapping, ImageResolver
from prodmatch.errors import InvalidQueryError, NotFoundError
from prodmatch.stores.filters import check_keys
from prodmatch.stores.records import Product

router = APIRouter(prefix="/v1/products", tags=["products"])
facets_router = APIRouter(tags=["products"])


async def find(state: State, product_id: str) -> Product:
    found: dict[str, Product] = await state.run(state.datadir.store.get, [product_id])
    product = found.get(product_id)
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
    store = state.datadir.store
    check_keys(filters, await state.run(store.attribute_keys))
    items = await state.run(store.page, offset, limit, filters)
    total = await state.run(store.count, filters)
    return ProductPage(total=total, offset=offset, items=[ProductOut(id=p.id, product=p.as_dict()) for p in items])


@facets_router.get("/v1/facets")
async def facets(state: State) -> dict[str, Any]:
    """The catalog's filterable attribute columns and their values: what the UI builds its filters from."""
    return {"facets": await state.run(state.facets)}


@router.get("/{product_id}", response_model=ProductOut)
async def get_product(state: State, product_id: str) -> ProductOut:
    product = await find(state, product_id)
    return ProductOut(id=product.id, product=product.as_dict())


@router.get("/{product_id}/image", response_class=FileResponse)
async def product_image(state: State, product_id: str, n: Annotated[int, Query(ge=0)] = 0) -> FileResponse:
    product = await find(state, product_id)
    if n >= len(product.images) or not Path(product.images[n].path).is_file():
        raise NotFoundError(f"product {product_id!r} has no image {n}")
    return FileResponse(product.images[n].path)


@router.get("/{product_id}/thumbnail", response_class=FileResponse)
async def product_thumbnail(state: State, product_id: str, n: Annotated[int, Query(ge=0)] = 0) -> FileResponse:
    """A small JPEG (made at ingest; made now for images ingested before thumbnails existed)."""
    product = await find(state, product_id)
    if n >= len(product.images):
        raise NotFoundError(f"product {product_id!r} has no image {n}")
    ref = product.images[n]
    path = state.datadir.thumbnail_path(ref.sha256)
    if not path.is_file():
        image = await state.run(state.service.decode, Path(ref.path))
        await state.run(state.datadir.save_thumbnail, ref.sha256, image)
    return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "public, max-age=86400"})


@router.put("/{product_id}", response_model=ProductOut)
async def put_product(
    state: State,
    product_id: str,
    fields: Annotated[str, Form(description='JSON object: {"name": ..., "description": ..., any attributes}')] = "{}",
    image: Annotated[UploadFile | None, File(description="the product photo (kept as is when omitted)")] = None,
) -> ProductOut:
    """Create or replace a product; it is matched by the next query, no restart needed."""
    row = _parse_fields(fields)
    row["id"] = product_id
    if image is not None:
        data = await image.read()
        await state.run(state.service.decode, data)  # refuse a bad image before anything is stored
        row["image"] = [str(await state.run(_store_upload, state, data))]
    elif (existing := (await state.run(state.datadir.store.get, [product_id])).get(product_id)) is not None:
        row["image"] = [ref.path for ref in existing.images]
    report = await state.run(_upsert, state, row)
    if report.rejected:
        raise InvalidQueryError(report.rejected[0].reason)
    return await get_product(state, product_id)


def _parse_fields(fields: str) -> dict[str, Any]:
    try:
        parsed = json.loads(fields)
    except json.JSONDecodeError as exc:
        raise InvalidQueryError(f"fields is not valid JSON: {exc.msg}") from exc
    if not isinstance(parsed, dict):
        raise InvalidQueryError("fields must be a JSON object")
    return parsed


def _store_upload(state: State, data: bytes) -> Path:
    folder = state.datadir.path / "uploads"
    folder.mkdir(exist_ok=True)
    path = folder / f"{hashlib.sha256(data).hexdigest()}.img"
    if not path.exists():
        partial = path.with_suffix(".part")
        partial.write_bytes(data)
        partial.replace(path)
    return path


def _upsert(state: State, row: dict[str, Any]) -> IngestReport:
    mapping = ColumnMapping("id", "name", "image", ("description",) if "description" in row else ())
    with state.catalog_lock:
        report = CatalogIngester(state.datadir, batch_size=1).ingest_rows(
            [RawRow(0, row)], mapping, ImageResolver(state.datadir.path, None)
        )
        state.catalog_changed()
    return report


@router.delete("/{product_id}", status_code=204)
async def delete_product(state: State, product_id: str) -> Response:
    await find(state, product_id)

    def delete() -> None:
        with state.catalog_lock:
            state.datadir.delete(product_id)
            state.datadir.save()
            state.catalog_changed()

    await state.run(delete)
    return Response(status_code=204)

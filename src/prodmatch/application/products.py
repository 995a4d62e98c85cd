"""Editing one product online: create or replace it (with an uploaded photo), delete it. The next query sees it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prodmatch.catalog.schema import RowError, draft_from_fields
from prodmatch.composition import Catalog
from prodmatch.errors import InvalidQueryError, NotFoundError
from prodmatch.stores.records import Product


def get_product(catalog: Catalog, product_id: str) -> Product:
    product = catalog.store.get([product_id]).get(product_id)
    if product is None:
        raise NotFoundError(f"no product with id {product_id!r}")
    return product


def upsert_product(catalog: Catalog, product_id: str, fields: dict[str, Any], image: bytes | None) -> Product:
    """Create or replace PRODUCT_ID from FIELDS ("name", "description", any attributes); without IMAGE the stored
    photos are kept. A bad photo or product is refused before anything is written."""
    existing = catalog.store.get([product_id]).get(product_id)
    if image is not None:
        catalog.decode(image)  # refuse an unusable photo before it is stored
        paths = [catalog.files.save_upload(image)]
    else:
        paths = [Path(ref.path) for ref in existing.images] if existing else []
    try:
        draft = draft_from_fields(product_id, fields, paths)
    except RowError as exc:
        raise InvalidQueryError(str(exc)) from exc
    with catalog.lock:
        report = catalog.ingester(batch_size=1).ingest_drafts([draft])
        catalog.facts.refresh()
    if report.rejected:
        raise InvalidQueryError(report.rejected[0].reason)
    _forget_unshown(catalog, {ref.sha256 for ref in existing.images} if existing else set())
    return get_product(catalog, product_id)


def delete_product(catalog: Catalog, product_id: str) -> None:
    """Delete PRODUCT_ID, its vectors and the photos it learned from feedback (NotFoundError when there is no
    such product)."""
    product = get_product(catalog, product_id)
    with catalog.lock:
        catalog.stores.delete(product_id)
        catalog.save()
        catalog.facts.refresh()
    for ref in product.images:
        if catalog.files.is_learned(ref.path) and not catalog.store.products_with_image(ref.sha256):
            catalog.files.forget_learned(ref.sha256)
    _forget_unshown(catalog, {ref.sha256 for ref in product.images})


def _forget_unshown(catalog: Catalog, shas: set[str]) -> None:
    """Delete the local features of images (of SHAS) that no product shows any more."""
    for sha in shas:
        if not catalog.store.products_with_image(sha):
            catalog.files.forget_features(sha)

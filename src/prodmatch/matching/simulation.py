"""Simulated customer queries for a catalog's own products: an altered copy of a product photo (alterations.py)
and a short text made of the product's attribute values and part of its name. Calibration fits the decision on
them; evaluation measures retrieval with them."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from prodmatch.batching import spans
from prodmatch.matching.alterations import customer_photo
from prodmatch.models.embedder import Embedder
from prodmatch.models.preprocess import open_image
from prodmatch.stores.records import Product

SPACES = ("image", "text")
_BATCH = 32
_SHORT_VALUE = re.compile(r"^[\w&' -]{2,30}$")
# A customer's phone photo is rarely larger than this; it also keeps altering fast.
_SOURCE_SIDE = 800


def build_queries(
    embedder: Embedder, space: str, products: Sequence[Product], seed: int
) -> tuple[list[Product], np.ndarray]:
    """The products that get a query in SPACE ("image" or "text") and their embedded queries, in order."""
    if space == "image":
        asked = [p for p in products if p.images]
        return asked, image_query_vectors(embedder, asked, seed)
    asked, queries = text_queries(products, seed)
    return asked, embedder.embed_texts(queries) if asked else np.zeros((0, 1), np.float32)


def text_queries(products: Sequence[Product], seed: int) -> tuple[list[Product], list[str]]:
    """The products that get a text query and their queries' words (query i uses the random stream [seed, i])."""
    queries = [text_query(p, np.random.default_rng([seed, i])) for i, p in enumerate(products)]
    return [p for p, q in zip(products, queries, strict=True) if q], [q for q in queries if q]


def query_words(space: str, products: Sequence[Product], seed: int) -> list[str | None]:
    """The words of each text query build_queries makes for SPACE, in order (None for each photo query): a text
    query is scored with its words (hybrid search)."""
    if space == "image":
        return [None] * sum(1 for p in products if p.images)
    return list(text_queries(products, seed)[1])


def image_query_vectors(embedder: Embedder, products: Sequence[Product], seed: int) -> np.ndarray:
    """Embedded altered copies of each product's first photo (query i uses the random stream [seed, i])."""
    rows = []
    for span in spans(len(products), _BATCH):
        photos = []
        for offset, product in enumerate(products[span]):
            rng = np.random.default_rng([seed, span.start + offset])
            source = open_image(product.images[0].path, draft_short_side=512)
            source.thumbnail((_SOURCE_SIDE, _SOURCE_SIDE))
            photos.append(open_image(customer_photo(source, rng)))
        rows.append(embedder.embed_images(photos))
    return np.vstack(rows) if rows else np.zeros((0, 1), np.float32)


def text_query(product: Product, rng: np.random.Generator) -> str:
    """Short categorical attribute values plus a random half of the name's words."""
    values = [v for v in product.attributes.values() if isinstance(v, str) and _SHORT_VALUE.match(v)]
    words = (product.name or "").split()
    keep = sorted(rng.choice(len(words), size=(len(words) + 1) // 2, replace=False)) if words else []
    return " ".join([*values, *(words[i] for i in keep)]).strip()

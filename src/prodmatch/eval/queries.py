"""The simulated queries `prodmatch eval` asks: an altered copy of each product's first photo, at a chosen
difficulty, and the short attribute + name text of matching.simulation.

Difficulty:
- "hard" (default): matching.hard_alterations, several camera-like degradations stacked (cutting crops, colour
  casts, perspective, rotation, busy backgrounds, lighting, strong downscaling, blur, noise, JPEG 20-50);
- "easy": matching.alterations, the milder set the decision is calibrated on (crop, colour shift, rescale, plain
  background, JPEG 50-85).

Every query draws from the random stream [seed, EVAL_STREAM, i]. Calibration draws from [1, i] (matching.calibration),
so whatever --seed a user picks, the decision is never fitted on the very queries it is then judged on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

from prodmatch.batching import spans
from prodmatch.matching.alterations import customer_photo
from prodmatch.matching.hard_alterations import customer_photo_hard
from prodmatch.matching.simulation import text_query
from prodmatch.models.embedder import Embedder
from prodmatch.models.preprocess import open_image
from prodmatch.stores.records import Product

Alteration = Callable[[Image.Image, np.random.Generator], bytes]
DIFFICULTIES: dict[str, Alteration] = {"easy": customer_photo, "hard": customer_photo_hard}
DEFAULT_DIFFICULTY = "hard"
EVAL_STREAM = 7919  # a third seed word: calibration's two-word streams can never produce these draws
_BATCH = 32
_SOURCE_SIDE = 800  # a customer's phone photo is rarely larger; as matching.simulation does


def alteration(difficulty: str) -> Alteration:
    """The alteration for DIFFICULTY ("easy" or "hard"); ValueError for another name."""
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"unknown difficulty {difficulty!r}; choose one of: {', '.join(DIFFICULTIES)}")
    return DIFFICULTIES[difficulty]


def query_stream(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, EVAL_STREAM, index])


def eval_queries(
    embedder: Embedder, space: str, products: Sequence[Product], seed: int, difficulty: str = DEFAULT_DIFFICULTY
) -> tuple[list[Product], np.ndarray]:
    """The products that get a query in SPACE ("image" or "text") and their embedded queries, in order."""
    if space == "image":
        asked = [p for p in products if p.images]
        return asked, altered_photo_vectors(embedder, asked, seed, alteration(difficulty))
    asked, texts = eval_texts(products, seed)
    return asked, embedder.embed_texts(texts) if asked else np.zeros((0, 1), np.float32)


def eval_texts(products: Sequence[Product], seed: int) -> tuple[list[Product], list[str]]:
    """The products that get a text query and the query's words (query i uses query_stream(seed, i))."""
    texts = [text_query(p, query_stream(seed, i)) for i, p in enumerate(products)]
    return [p for p, text in zip(products, texts, strict=True) if text], [text for text in texts if text]


def eval_words(space: str, products: Sequence[Product], seed: int) -> list[str | None]:
    """The words of each query eval_queries makes for SPACE, in order (None for a photo query): a text query is
    scored with its words (hybrid search)."""
    if space == "image":
        return [None] * sum(1 for p in products if p.images)
    return list(eval_texts(products, seed)[1])


def altered_photo_vectors(embedder: Embedder, products: Sequence[Product], seed: int, alter: Alteration) -> np.ndarray:
    """Embedded altered copies of each product's first photo (query i uses query_stream(seed, i))."""
    rows = []
    for span in spans(len(products), _BATCH):
        photos = [
            altered_photo(product, query_stream(seed, span.start + k), alter)
            for k, product in enumerate(products[span])
        ]
        rows.append(embedder.embed_images([open_image(photo) for photo in photos]))
    return np.vstack(rows) if rows else np.zeros((0, 1), np.float32)


def altered_photo(product: Product, rng: np.random.Generator, alter: Alteration) -> bytes:
    """JPEG bytes of an altered copy of PRODUCT's first photo."""
    source = open_image(product.images[0].path, draft_short_side=512)
    source.thumbnail((_SOURCE_SIDE, _SOURCE_SIDE))
    return alter(source, rng)

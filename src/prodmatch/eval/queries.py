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
from dataclasses import dataclass

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


@dataclass
class EvalQueries:
    """The queries eval asks in one space, in order: the products asked about, their embedded queries, and the
    altered photos (image space, for verification) or the texts' words (text space, for hybrid scoring)."""

    asked: list[Product]
    vectors: np.ndarray
    photos: list[Image.Image | None]
    words: list[str | None]


def eval_queries(
    embedder: Embedder, space: str, products: Sequence[Product], seed: int, difficulty: str = DEFAULT_DIFFICULTY
) -> EvalQueries:
    """The queries asked in SPACE ("image" or "text") about PRODUCTS."""
    if space == "image":
        asked = [p for p in products if p.images]
        photos = altered_photos(asked, seed, alteration(difficulty))
        vectors = embed_in_batches(embedder, photos)
        return EvalQueries(asked, vectors, list(photos), [None] * len(asked))
    asked, texts = eval_texts(products, seed)
    vectors = embedder.embed_texts(texts) if asked else np.zeros((0, 1), np.float32)
    return EvalQueries(asked, vectors, [None] * len(asked), list(texts))


def eval_texts(products: Sequence[Product], seed: int) -> tuple[list[Product], list[str]]:
    """The products that get a text query and the query's words (query i uses query_stream(seed, i))."""
    texts = [text_query(p, query_stream(seed, i)) for i, p in enumerate(products)]
    return [p for p, text in zip(products, texts, strict=True) if text], [text for text in texts if text]


def altered_photos(products: Sequence[Product], seed: int, alter: Alteration) -> list[Image.Image]:
    """Decoded altered copies of each product's first photo (query i uses query_stream(seed, i))."""
    return [open_image(altered_photo(p, query_stream(seed, i), alter)) for i, p in enumerate(products)]


def embed_in_batches(embedder: Embedder, photos: Sequence[Image.Image]) -> np.ndarray:
    rows = [embedder.embed_images(photos[span]) for span in spans(len(photos), _BATCH)]
    return np.vstack(rows) if rows else np.zeros((0, 1), np.float32)


def altered_photo(product: Product, rng: np.random.Generator, alter: Alteration) -> bytes:
    """JPEG bytes of an altered copy of PRODUCT's first photo."""
    source = open_image(product.images[0].path, draft_short_side=512)
    source.thumbnail((_SOURCE_SIDE, _SOURCE_SIDE))
    return alter(source, rng)

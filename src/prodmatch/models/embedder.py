"""The Embedder seam (what the rest of prodmatch needs from a model) and TowerEmbedder, its one implementation."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image

from prodmatch.batching import slices
from prodmatch.errors import ModelUnavailableError
from prodmatch.models.bundle import Manifest
from prodmatch.models.preprocess import to_tensor
from prodmatch.models.runtime import ModelSession
from prodmatch.models.tokenize import TOKEN_INPUTS, TextTokenizer


@runtime_checkable
class Embedder(Protocol):
    """Turns images and texts into L2-normalised float32 vectors.

    Image vectors live in the "image" space, text vectors in the "text" space; when
    manifest.shared_space is true the two spaces are one and text->image search is meaningful.
    """

    manifest: Manifest

    @property
    def fingerprint(self) -> str: ...

    @property
    def dims(self) -> dict[str, int]:
        """Vector size per space: {"image": ..., "text": ...}."""
        ...

    @property
    def shared_space(self) -> bool:
        """True when image and text vectors can be compared (text -> image search)."""
        ...

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray: ...

    def pixels(self, images: Sequence[Image.Image]) -> np.ndarray:
        """The model's input batch for IMAGES (resize, crop, normalise): separable so it can run elsewhere."""
        ...

    def embed_pixels(self, pixels: np.ndarray) -> np.ndarray: ...

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray: ...

    def health(self) -> str | None:
        """None when the model can serve now, else why not (a remote model server being down)."""
        ...

    def close(self) -> None:
        """Release connections or sessions; the embedder is not used afterwards."""
        ...


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, as float32; zero rows stay zero."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    normalised: np.ndarray = vectors / np.maximum(norms, 1e-12)
    return normalised


class ManifestEmbedder:
    """What every Embedder derives from its bundle's MANIFEST alone: identity, dimensions and the preprocessing
    (decoded photos become model input in the caller's process, wherever the towers run). Subclasses embed."""

    manifest: Manifest

    @property
    def fingerprint(self) -> str:
        return self.manifest.fingerprint

    @property
    def dims(self) -> dict[str, int]:
        return self.manifest.spaces

    @property
    def shared_space(self) -> bool:
        return self.manifest.shared_space

    def pixels(self, images: Sequence[Image.Image]) -> np.ndarray:
        return to_tensor(images, self.manifest.image.preprocess)

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Unit vectors in the image space, one row per image."""
        return self.embed_pixels(self.pixels(images))

    def embed_pixels(self, pixels: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class TowerEmbedder(ManifestEmbedder):
    """The Embedder for every backend: MANIFEST's preprocessing and TOKENIZER here, the towers' models in the
    IMAGE and TEXT sessions (wherever those run them)."""

    def __init__(self, manifest: Manifest, image: ModelSession, text: ModelSession, tokenizer: TextTokenizer) -> None:
        if len(image.inputs) != 1:
            raise ModelUnavailableError(f"{manifest.name}: the image model takes {list(image.inputs)}, not pixels")
        if unknown := set(text.inputs) - set(TOKEN_INPUTS):
            raise ModelUnavailableError(f"{manifest.name}: the text model takes {sorted(unknown)}, not tokens")
        self.manifest = manifest
        self.image_session = image
        self.text_session = text
        self.tokenizer = tokenizer

    def embed_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Unit vectors for an already preprocessed NCHW batch."""
        session = self.image_session
        (name,) = session.inputs  # one input, checked in __init__
        feeds = [_cast(session.inputs, {name: chunk}) for chunk in slices(pixels, session.max_batch)]
        return _vectors(session, feeds, self.manifest.image.dims)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors in the text space, one row per text."""
        session = self.text_session
        feeds = (
            _cast(session.inputs, self.tokenizer.encode(chunk, pad_to_multiple_of=session.pad_to_multiple_of))
            for chunk in slices(list(texts), session.max_batch)
        )
        return _vectors(session, feeds, self.manifest.text.dims)

    def health(self) -> str | None:
        # Stops at the first unready tower: a down server is reported after one tower's retries, not two.
        return self.image_session.health() or self.text_session.health()

    def close(self) -> None:
        self.image_session.close()
        self.text_session.close()


def _cast(inputs: Mapping[str, np.dtype[Any]], arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The arrays a session takes (a text model may not take all the tokenizer's), as the dtypes it takes, in
    contiguous memory: Triton's clients send the raw buffer, and a served model may want int32 or float16."""
    return {name: np.ascontiguousarray(arrays[name], dtype=dtype) for name, dtype in inputs.items()}


def _vectors(session: ModelSession, feeds: Iterable[Mapping[str, np.ndarray]], dims: int) -> np.ndarray:
    rows = [session.run(feed) for feed in feeds]
    return l2_normalise(np.concatenate(rows)) if rows else np.zeros((0, dims), np.float32)

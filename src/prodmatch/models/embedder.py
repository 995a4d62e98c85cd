"""The Embedder seam: what the rest of prodmatch needs from a model runtime."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image

from prodmatch.models.bundle import Manifest
from prodmatch.models.preprocess import to_tensor


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


class ManifestProperties:
    """The Embedder properties that come straight from the bundle manifest."""

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

    def health(self) -> str | None:
        return None  # an in-process model is ready once constructed

    def close(self) -> None:
        return None

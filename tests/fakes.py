"""A deterministic stand-in for the model, for the fast tier: logic tests (routes, errors, filters, decision
plumbing, ingest bookkeeping, the CLI's handling of arguments) run through the Embedder seam without exporting or
running a real model.

FakeEmbedder's vectors:
- photos: the model input the real preprocessing makes (`to_tensor`, a 16 x 16 centre crop), average-pooled to
  8 x 8 x 3 and centred on its own mean: the same photo gives the same vector, a re-encoded or slightly altered copy
  a near one, and a photo on a white background is not near every other photo on white.
- texts: a bag of words, each word a fixed pseudo-random direction (seeded by a hash of the word, so equal in every
  process): equal texts give equal vectors, texts sharing words near ones.
Both are L2-normalised float32, as the Embedder contract says. The image and text spaces have different sizes
unless the bundle shares one space, so a vector searched in the wrong space fails loudly.

The bundle is a real bundle folder (manifest.json written by prodmatch's own write_manifest, so `Bundle` and the
catalog's model record accept it) whose graph and tokenizer files are placeholders: opened with the real runtime
instead of the fake, it fails at once instead of quietly giving other vectors.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from prodmatch.config import Settings
from prodmatch.errors import InvalidTextError, ModelServerUnavailableError
from prodmatch.matching.decision import Calibration
from prodmatch.models.bundle import IMAGE_GRAPH, TEXT_GRAPH, TOKENIZER_FILE, Bundle, Manifest, write_manifest
from prodmatch.models.embedder import ManifestEmbedder, l2_normalise
from prodmatch.models.registry import ImageTowerSpec, Preprocess, TextTowerSpec

FAKE_FAMILY = "fake"
CROP = 16
POOL = 2  # 16 x 16 pooled to 8 x 8
IMAGE_DIMS = 3 * (CROP // POOL) ** 2  # 192
TEXT_DIMS = 96
_WORD = re.compile(r"[a-z0-9]+")

# A decision calibration written by hand instead of fitted on the fake's vectors (which are not a model: what a fit
# on them learns says nothing), so that tests know the exact decision for a result: a match when
# score_weight * score + margin_weight * margin + intercept >= 0. Photos: a match from a top score of 0.975 (minus
# half the margin); texts from 0.85. Different numbers per space, so a decision taken in the wrong space shows.
KNOWN_CALIBRATIONS = {
    "image": Calibration(
        score_weight=40.0, margin_weight=20.0, intercept=-39.0, positives=1, negatives=1, balanced_accuracy=1.0
    ),
    "text": Calibration(
        score_weight=20.0, margin_weight=10.0, intercept=-17.0, positives=1, negatives=1, balanced_accuracy=1.0
    ),
}


def fake_manifest(shared_space: bool) -> Manifest:
    preprocess = Preprocess(resize_short=CROP, crop=CROP, interpolation="bilinear", mean=(0.5,) * 3, std=(0.5,) * 3)
    return Manifest(
        name="fake-pixels-words" + ("-shared" if shared_space else ""),
        family=FAKE_FAMILY,
        source="tests/fakes.py",
        description="test stand-in: pooled pixels and hashed words, no model",
        for_matching=False,
        shared_space=shared_space,
        precision="fp32",
        image=ImageTowerSpec(dims=IMAGE_DIMS, preprocess=preprocess),
        text=TextTowerSpec(dims=IMAGE_DIMS if shared_space else TEXT_DIMS, tokenizer="wordpiece", max_length=64),
    )


def make_fake_bundle(folder: Path, shared_space: bool = False) -> Bundle:
    """A bundle folder for FakeEmbedder (placeholder graphs: the real runtimes refuse them)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in (IMAGE_GRAPH, TEXT_GRAPH, TOKENIZER_FILE):
        (folder / name).write_text(f"placeholder for tests.fakes.FakeEmbedder, not a {name}\n")
    write_manifest(folder, fake_manifest(shared_space))
    return Bundle(folder)


def word_vector(word: str, dims: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
    return np.random.default_rng(seed).standard_normal(dims).astype(np.float32)


class FakeEmbedder(ManifestEmbedder):
    """The Embedder protocol, deterministic and fast; it records its calls and can be made to fail.

    calls: ("image" | "text", batch size) per call, in order. Set `down` to a reason to make it behave like an
    unreachable model server (health() says why, embedding raises), `delay_s` to make every call that slow."""

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self.calls: list[tuple[str, int]] = []
        self.down: str | None = None
        self.delay_s = 0.0
        self.closed = False
        self._lock = threading.Lock()

    def embed_pixels(self, pixels: np.ndarray) -> np.ndarray:
        self._call("image", len(pixels))
        side = CROP // POOL
        pooled = pixels.reshape(len(pixels), 3, side, POOL, side, POOL).mean(axis=(3, 5)).reshape(len(pixels), -1)
        return l2_normalise(pooled - pooled.mean(axis=1, keepdims=True))

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        self._call("text", len(texts))
        dims = self.manifest.text.dims
        rows = np.zeros((len(texts), dims), np.float32)
        for row, text in enumerate(texts):
            if not text.strip():
                raise InvalidTextError("text is empty")
            for word in _WORD.findall(text.lower()) or [text.strip()]:
                rows[row] += word_vector(word, dims)
        return l2_normalise(rows)

    def health(self) -> str | None:
        return self.down

    def close(self) -> None:
        self.closed = True

    def _call(self, space: str, size: int) -> None:
        if self.down is not None:
            raise ModelServerUnavailableError(f"fake model server: {self.down}")
        if self.delay_s:
            time.sleep(self.delay_s)
        with self._lock:
            self.calls.append((space, size))

    def count(self, space: str) -> int:
        """How many items were embedded in SPACE."""
        return sum(size for kind, size in self.calls if kind == space)


class FakeEmbedders:
    """An EmbedderFactory (Catalog.open(..., embedders=...), create_app(..., embedders=...)) that makes
    FakeEmbedders and keeps them, so a test can read their calls or make them fail."""

    def __init__(self) -> None:
        self.made: list[FakeEmbedder] = []

    def __call__(self, bundle: Bundle, settings: Settings) -> FakeEmbedder:
        if bundle.manifest.family != FAKE_FAMILY:
            raise AssertionError(f"the fake model was given a real bundle ({bundle.folder})")
        embedder = FakeEmbedder(bundle.manifest)
        self.made.append(embedder)
        return embedder

    @property
    def last(self) -> FakeEmbedder:
        assert self.made, "no catalog opened its model yet"
        return self.made[-1]

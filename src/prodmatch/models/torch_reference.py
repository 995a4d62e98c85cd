"""The PyTorch reference Embedder: same preprocessing and tokenizer, the original modules. Slow; for parity."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from prodmatch.models.bundle import TOKENIZER_FILE, Manifest
from prodmatch.models.embedder import ManifestProperties, l2_normalise
from prodmatch.models.registry import ModelSpec
from prodmatch.models.tokenize import TextTokenizer
from prodmatch.models.torch_towers import build_towers


class TorchEmbedder(ManifestProperties):
    """Embedder running the registry's PyTorch modules in fp32."""

    def __init__(self, spec: ModelSpec, clip_weights: str, threads: int | None = None) -> None:
        if threads:
            torch.set_num_threads(threads)
        self.manifest = Manifest.from_spec(spec, "fp32").model_copy(update={"fingerprint": "torch-reference"})
        self._workdir = tempfile.TemporaryDirectory(prefix="prodmatch-torch-")
        tokenizer_file = Path(self._workdir.name) / TOKENIZER_FILE
        self._towers = build_towers(spec, clip_weights, tokenizer_file)
        self.tokenizer = TextTokenizer(tokenizer_file, spec.text)

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.embed_pixels(self.pixels(images))

    def embed_pixels(self, pixels: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return l2_normalise(self._towers.image(torch.from_numpy(pixels)).numpy())

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        encoded = self.tokenizer.encode(texts)
        inputs = [torch.from_numpy(encoded[name]) for name in self._towers.text_input_names]
        with torch.inference_mode():
            return l2_normalise(self._towers.text(*inputs).numpy())

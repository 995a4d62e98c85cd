"""The default Embedder: ONNX Runtime sessions over a bundle."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import onnxruntime as ort
from PIL import Image

from prodmatch.config import RuntimeSettings
from prodmatch.models.bundle import Bundle
from prodmatch.models.embedder import ManifestProperties, l2_normalise
from prodmatch.models.tokenize import TextTokenizer

# Prefer accelerators when this onnxruntime build has them; CPU is always last and always present.
_PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


def session_options(runtime: RuntimeSettings) -> ort.SessionOptions:
    """One pool of intra-op threads (a core each), no inter-op parallelism: the fastest setting for
    one batch at a time on a small CPU; more threads than cores only adds contention."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = runtime.intra_op_threads or os.cpu_count() or 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if runtime.spin_wait else "0")
    return options


def available_providers() -> list[str]:
    present = set(ort.get_available_providers())
    return [name for name in _PREFERRED_PROVIDERS if name in present]


class OnnxEmbedder(ManifestProperties):
    """Embedder backed by ONNX Runtime; sessions are created once, in the constructor."""

    def __init__(self, bundle: Bundle, runtime: RuntimeSettings | None = None) -> None:
        self.bundle = bundle
        self.manifest = bundle.manifest
        self.runtime = runtime or RuntimeSettings()
        options = session_options(self.runtime)
        providers = available_providers()
        self._image = ort.InferenceSession(str(bundle.image_graph), options, providers=providers)
        self._text = ort.InferenceSession(str(bundle.text_graph), options, providers=providers)
        self._text_inputs = [node.name for node in self._text.get_inputs()]
        self.tokenizer = TextTokenizer(bundle.tokenizer_file, self.manifest.text)

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Unit vectors in the image space, one row per image."""
        return self.embed_pixels(self.pixels(images))

    def embed_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Unit vectors for an already preprocessed NCHW batch."""
        chunks = [
            self._image.run(None, {"pixel_values": pixels[start : start + self.runtime.max_batch]})[0]
            for start in range(0, len(pixels), self.runtime.max_batch)
        ]
        return l2_normalise(np.concatenate(chunks)) if chunks else np.zeros((0, self.manifest.image.dims), "f4")

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors in the text space, one row per text."""
        rows = []
        for start in range(0, len(texts), self.runtime.max_batch):
            encoded = self.tokenizer.encode(texts[start : start + self.runtime.max_batch])
            rows.append(self._text.run(None, {name: encoded[name] for name in self._text_inputs})[0])
        return l2_normalise(np.concatenate(rows)) if rows else np.zeros((0, self.manifest.text.dims), "f4")

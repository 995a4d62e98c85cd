"""The PyTorch reference: the registry's original modules as ModelSessions, in fp32. Slow; for parity checks."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from prodmatch.config import RuntimeSettings
from prodmatch.models.bundle import TOKENIZER_FILE, Manifest
from prodmatch.models.registry import ModelSpec
from prodmatch.models.tokenize import TextTokenizer
from prodmatch.models.torch_towers import build_towers

REFERENCE_FINGERPRINT = "torch-reference"


class TorchSession:
    """A ModelSession over one PyTorch tower, which takes INPUTS as positional tensors in that order."""

    pad_to_multiple_of = 1

    def __init__(self, module: nn.Module, inputs: Mapping[str, np.dtype[Any]], max_batch: int) -> None:
        self.module = module
        self.inputs = inputs
        self.max_batch = max_batch

    def run(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        tensors = [torch.from_numpy(inputs[name]) for name in self.inputs]
        with torch.inference_mode():
            output: np.ndarray = self.module(*tensors).numpy()
        return output

    def health(self) -> str | None:
        return None

    def close(self) -> None:
        return None  # the modules are freed with the session


@dataclass
class Reference:
    """What a reference Embedder is made of: the registry's manifest and tokenizer, and the two towers."""

    manifest: Manifest
    image: TorchSession
    text: TorchSession
    tokenizer: TextTokenizer


def open_reference(spec: ModelSpec, clip_weights: str, runtime: RuntimeSettings) -> Reference:
    """SPEC's towers built from its original weights; the tokenizer is written and read here too, so that the
    reference owes nothing to an exported bundle."""
    if runtime.intra_op_threads:
        torch.set_num_threads(runtime.intra_op_threads)
    # Not a bundle fingerprint: a catalog built with the reference must never pass for one built from a bundle.
    manifest = Manifest.from_spec(spec, "fp32").model_copy(update={"fingerprint": REFERENCE_FINGERPRINT})
    with tempfile.TemporaryDirectory(prefix="prodmatch-torch-") as workdir:
        tokenizer_file = Path(workdir) / TOKENIZER_FILE
        towers = build_towers(spec, clip_weights, tokenizer_file)
        tokenizer = TextTokenizer(tokenizer_file, spec.text)  # reads the file now; the folder can go
    image = TorchSession(towers.image, {"pixel_values": np.dtype(np.float32)}, runtime.max_batch)
    text = TorchSession(towers.text, _int64(towers.text_input_names), runtime.max_batch)
    return Reference(manifest, image, text, tokenizer)


def _int64(names: Sequence[str]) -> dict[str, np.dtype[Any]]:
    return {name: np.dtype(np.int64) for name in names}

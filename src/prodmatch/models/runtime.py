"""The ModelSession seam: one tower's model, run somewhere (ONNX Runtime here, a Triton server, PyTorch).

A session only runs batches it is given. Everything that must be identical whichever runtime computes the
vectors (preprocessing, tokenisation, splitting into batches, dtype casts, normalising, the empty batch) lives
once in embedder.TowerEmbedder, so that backends cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np

S = TypeVar("S", bound=Sequence[Any] | np.ndarray)


@runtime_checkable
class ModelSession(Protocol):
    """One tower: a batch of named input arrays in, one (batch, dims) array of raw (unnormalised) vectors out."""

    @property
    def inputs(self) -> Mapping[str, np.dtype[Any]]:
        """The model's inputs, in its order, with the dtype each must be sent as (Triton may serve int32 ids)."""
        ...

    @property
    def max_batch(self) -> int:
        """The most rows one run() may carry."""
        ...

    @property
    def pad_to_multiple_of(self) -> int:
        """Text inputs are padded to a multiple of this many tokens: 1 for in-process runtimes; a model server
        batches concurrent requests together only when their shapes agree, so it asks for buckets."""
        ...

    def run(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray: ...

    def health(self) -> str | None:
        """None when the model can serve now, else why not."""
        ...

    def close(self) -> None: ...

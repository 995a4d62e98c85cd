"""Small helpers the stores share: vectors from their stored bytes. (Batches: prodmatch.batching.)"""

from __future__ import annotations

import numpy as np


def stack_vectors(blobs: list[bytes]) -> np.ndarray:
    """Stored float32 (little-endian) vectors as one (n, dims) array."""
    if not blobs:
        return np.zeros((0, 0), dtype=np.float32)
    return np.vstack([np.frombuffer(blob, dtype="<f4") for blob in blobs]).astype(np.float32)

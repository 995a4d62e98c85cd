"""Helpers every MetadataStore shares: vector blobs, chunked id lists, duplicate-listing groups."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np


def same_photo(first: bytes | None, second: bytes | None, max_difference: float) -> bool:
    if not first or not second or len(first) != len(second):
        return False
    difference = np.abs(np.frombuffer(first, np.uint8).astype(np.int16) - np.frombuffer(second, np.uint8))
    return float(difference.mean()) <= max_difference


def stack_vectors(blobs: list[bytes]) -> np.ndarray:
    if not blobs:
        return np.zeros((0, 0), dtype=np.float32)
    return np.vstack([np.frombuffer(blob, dtype="<f4") for blob in blobs]).astype(np.float32)


def chunks(values: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def merge_groups(groups: Iterable[set[str]]) -> list[list[str]]:
    """Union overlapping groups (A~B by one image, B~C by another) into sorted, disjoint groups."""
    merged: list[set[str]] = []
    for group in groups:
        overlapping = [m for m in merged if m & group]
        union = set(group).union(*overlapping)
        merged = [m for m in merged if not (m & group)] + [union]
    return sorted(sorted(group) for group in merged)

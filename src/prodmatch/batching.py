"""Cutting work into batches: the one helper every layer uses (database statements, model runs, ingest batches)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class Sliceable(Protocol):
    def __len__(self) -> int: ...

    def __getitem__(self, index: slice, /) -> Any: ...


S = TypeVar("S", bound=Sliceable)


def spans(total: int, size: int) -> Iterator[slice]:
    """Consecutive slices of at most SIZE items covering TOTAL items: one batch of several parallel arrays."""
    if size < 1:
        raise ValueError(f"batch size must be positive, got {size}")
    return (slice(start, start + size) for start in range(0, total, size))


def chunks(values: Sequence[T], size: int) -> Iterator[list[T]]:
    """VALUES in consecutive lists of at most SIZE (a database's limit on one statement's parameters)."""
    return (list(values[span]) for span in spans(len(values), size))


def slices(items: S, size: int) -> list[S]:
    """ITEMS (a list, an array) in consecutive slices of at most SIZE, each of ITEMS' own type; none for no items."""
    return [items[span] for span in spans(len(items), size)]


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """ITEMS, read lazily, in lists of at most SIZE (a catalog streamed row by row, never held whole)."""
    if size < 1:
        raise ValueError(f"batch size must be positive, got {size}")
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch

"""Batching helpers: every item exactly once, in order, in batches of at most the size asked for."""

from __future__ import annotations

import numpy as np
import pytest

from prodmatch.batching import chunks, spans


@pytest.mark.parametrize(("total", "size", "lengths"), [(0, 3, []), (6, 3, [3, 3]), (7, 3, [3, 3, 1]), (2, 5, [2])])
def test_chunks_cover_every_item_once_in_order(total: int, size: int, lengths: list[int]) -> None:
    values = list(range(total))
    batches = list(chunks(values, size))
    assert [len(batch) for batch in batches] == lengths
    assert [item for batch in batches for item in batch] == values


def test_spans_cut_parallel_arrays_alike() -> None:
    ids, labels = np.arange(100, 107), [f"p{i}" for i in range(7)]
    pairs = [(ids[span].tolist(), labels[span]) for span in spans(len(ids), 3)]
    assert pairs[-1] == ([106], ["p6"]) and sum(len(batch) for batch, _ in pairs) == 7


def test_a_batch_size_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="batch size must be positive"):
        spans(5, 0)


def test_slices_keep_the_type_and_batched_reads_lazily() -> None:
    from prodmatch.batching import batched, slices

    pieces = slices(np.arange(5), 2)
    assert [piece.tolist() for piece in pieces] == [[0, 1], [2, 3], [4]] and all(
        isinstance(p, np.ndarray) for p in pieces
    )
    assert slices([], 3) == []
    taken: list[int] = []

    def numbers() -> object:
        for number in range(7):
            taken.append(number)
            yield number

    first = next(batched(numbers(), 3))  # type: ignore[arg-type]
    assert first == [0, 1, 2] and taken == [0, 1, 2]  # nothing read beyond the first batch
    assert list(batched(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    with pytest.raises(ValueError):
        list(batched(range(3), 0))

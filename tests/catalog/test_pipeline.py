"""The ingest pipeline's read-ahead: bounded (memory stays flat however long the feed), errors surface in the
consumer, and closing it stops the producer."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from prodmatch.catalog.pipeline import ReadAhead


class Counted:
    """An endless feed that records how far it has been read."""

    def __init__(self) -> None:
        self.produced = 0

    def __iter__(self) -> Iterator[int]:
        while True:
            self.produced += 1
            yield self.produced


def test_read_ahead_stays_within_its_depth_and_keeps_order() -> None:
    feed = Counted()
    with ReadAhead(feed, depth=2) as ahead:
        items = iter(ahead)
        assert [next(items) for _ in range(5)] == [1, 2, 3, 4, 5]
        time.sleep(0.3)  # give the producer every chance to run ahead
        assert feed.produced <= 5 + 2 + 1  # the queue's two, plus the one it is blocked putting
    assert not any(t.name == "read-ahead" for t in threading.enumerate())  # closed: the producer thread ended


def test_a_producer_error_is_raised_in_the_consumer() -> None:
    def failing() -> Iterator[int]:
        yield 1
        raise OSError("disk went away")

    with ReadAhead(failing(), depth=2) as ahead, pytest.raises(OSError, match="disk went away"):
        list(ahead)

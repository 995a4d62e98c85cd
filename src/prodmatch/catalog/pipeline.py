"""The plumbing of a pipelined ingest: a bounded read-ahead thread, so that reading the catalog and its image files
overlaps the model while memory stays flat (at most DEPTH items wait at any time), and a serial writer thread, so
that store writes overlap the model too."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

T = TypeVar("T")
_DONE = object()


class ReadAhead(Generic[T]):
    """Iterates ITEMS on a thread of its own, DEPTH items ahead of the consumer. An exception in the producer is
    raised in the consumer; close() (or leaving the `with`) stops the producer at its next item."""

    def __init__(self, items: Iterable[T], depth: int, name: str = "read-ahead") -> None:
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, args=(iter(items),), name=name, daemon=True)
        self._thread.start()

    def _produce(self, items: Iterator[T]) -> None:
        try:
            for item in items:
                if not self._put(item):
                    return
        except BaseException as exc:  # handed to the consumer, which raises it where the item would have been
            self._put(_Failure(exc))
            return
        self._put(_DONE)

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[T]:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item  # type: ignore[misc]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> ReadAhead[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class SerialWriter:
    """Runs write jobs one at a time on a thread of its own, so the caller can embed the next batch meanwhile. At
    most one job is queued: submit() first waits for the previous one (and raises its error)."""

    def __init__(self, name: str = "writer") -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._last: Future[None] | None = None

    def submit(self, job: Callable[[], None]) -> None:
        self.wait()
        self._last = self._pool.submit(job)

    def wait(self) -> None:
        last, self._last = self._last, None
        if last is not None:
            last.result()

    def close(self) -> None:
        """Wait for a running job (the stores must not be saved or closed under it), then stop the thread."""
        self._pool.shutdown(wait=True)

"""The query log: every answered match, written by a background thread so it never slows or fails a response."""

from __future__ import annotations

import logging
import queue
import threading

from prodmatch.stores.protocols import MetadataStore
from prodmatch.stores.records import QueryLogEntry

log = logging.getLogger(__name__)
_STOP = object()


class QueryLog:
    """Buffers entries in memory and writes them in batches; a full buffer or a failing store drops entries
    (counted in `dropped`) instead of blocking requests."""

    def __init__(self, store: MetadataStore, capacity: int = 10_000, batch: int = 200) -> None:
        self._store = store
        self._queue: queue.Queue[object] = queue.Queue(maxsize=capacity)
        self._batch = batch
        self.written = 0
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="query-log", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Write what is buffered, then end the writer thread."""
        self._queue.put(_STOP)
        self._thread.join(timeout=10)

    def flush(self) -> None:
        """Block until everything recorded so far has been written (or dropped)."""
        self._queue.join()

    def record(self, entry: QueryLogEntry) -> None:
        try:
            self._queue.put_nowait(entry)
        except queue.Full:
            self.dropped += 1

    def _run(self) -> None:
        while True:
            items = [self._queue.get()]
            while len(items) < self._batch and not self._queue.empty():
                items.append(self._queue.get_nowait())
            self._write([item for item in items if isinstance(item, QueryLogEntry)])
            for _ in items:
                self._queue.task_done()
            if _STOP in items:
                return

    def _write(self, entries: list[QueryLogEntry]) -> None:
        if not entries:
            return
        try:
            self._store.append_queries(entries)
            self.written += len(entries)
        except Exception:  # the store being down must not reach requests; the loss is counted and logged
            self.dropped += len(entries)
            log.exception("query log: %d entries could not be written", len(entries))

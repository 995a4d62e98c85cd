"""Micro-batching: concurrent requests' inputs are embedded together, one model run per batch.

A request waits at most `max_wait_ms` for company; a batch closes early when it reaches `max_batch`. A lone
request therefore pays at most max_wait_ms extra, and under load each model run serves many requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Generic, TypeVar

import numpy as np

Item = TypeVar("Item")
BatchObserver = Callable[[int], None]


class MicroBatcher(Generic[Item]):
    """Collects items from concurrent callers and runs `embed` on them in batches, in an executor thread."""

    def __init__(
        self,
        embed: Callable[[Sequence[Item]], np.ndarray],
        max_batch: int,
        max_wait_ms: float,
        executor: Executor,
        observe: BatchObserver = lambda _size: None,
    ) -> None:
        self._embed = embed
        self._max_batch = max_batch
        self._max_wait = max_wait_ms / 1000
        self._executor = executor
        self._observe = observe
        self._queue: asyncio.Queue[tuple[Item, asyncio.Future[np.ndarray]]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._worker = asyncio.create_task(self._run(), name="micro-batcher")

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker

    async def embed(self, item: Item) -> np.ndarray:
        """The vector for ITEM, computed in a batch with whatever else arrived meanwhile."""
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        await self._queue.put((item, future))
        return await future

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            # whatever queued up while the model was busy joins at once; only then wait for latecomers
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            deadline = time.monotonic() + self._max_wait
            while len(batch) < self._max_batch and (left := deadline - time.monotonic()) > 0:
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), timeout=left))
                except TimeoutError:
                    break
            await self._dispatch(batch)

    async def _dispatch(self, batch: list[tuple[Item, asyncio.Future[np.ndarray]]]) -> None:
        self._observe(len(batch))
        loop = asyncio.get_running_loop()
        try:
            vectors = await loop.run_in_executor(self._executor, self._embed, [item for item, _ in batch])
        except Exception as exc:  # any failure is handed to every waiting caller, who reports it
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), vector in zip(batch, vectors, strict=True):
            if not future.done():
                future.set_result(vector)

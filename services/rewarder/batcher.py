"""Dynamic batching: coalesce items from concurrent requests into batches for one scoring thread.

Requests put their items on one queue and await one future per item. A single loop takes the first
queued item, waits up to ``max_wait`` for the batch to fill to ``max_batch_size``, also takes whatever
else is already queued (up to ``sort_window`` items), sorts them by length and cuts them into batches of
at most ``max_batch_size`` items and ``max_batch_tokens`` padded tokens (items x longest item), so each
batch holds similar lengths (less padding) and no forward pass outgrows memory. The batches run one
after another in a single worker thread (one forward at a time: the model is not shared between
threads, and on a small CPU two forwards would only slow each other). While a batch runs, new requests
queue up and form the next one.

A failing batch is re-run item by item, so one bad item fails only its own request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

log = logging.getLogger(__name__)


class Sized(Protocol):
    @property
    def length(self) -> int: ...


T = TypeVar("T", bound=Sized)
ScoreBatch = Callable[[list[T]], list[float]]
BatchObserver = Callable[[int, float], None]


@dataclass(eq=False)
class _Pending(Generic[T]):
    item: T
    future: asyncio.Future[float]


class DynamicBatcher(Generic[T]):
    def __init__(
        self,
        score_batch: ScoreBatch[T],
        max_batch_size: int,
        max_wait_s: float,
        max_batch_tokens: int | None = None,
        sort_window: int | None = None,
        on_batch: BatchObserver | None = None,
        thread_initializer: Callable[[], None] | None = None,
    ):
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be >= 1")
        self.score_batch = score_batch
        self.max_batch_size = max_batch_size
        self.max_wait_s = max(max_wait_s, 0.0)
        self.max_batch_tokens = max_batch_tokens
        # Sorting a window of several batches is what makes length-sorting pay off: within one batch,
        # order does not change the padding.
        self.sort_window = max(sort_window or 8 * max_batch_size, max_batch_size)
        self.on_batch = on_batch
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="rewarder-score", initializer=thread_initializer
        )
        self._queue: asyncio.Queue[_Pending[T]] | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def queued(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._run(), name="rewarder-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        while self._queue is not None and not self._queue.empty():
            pending = self._queue.get_nowait()
            if not pending.future.done():
                pending.future.set_exception(RuntimeError("the rewarder is shutting down"))
        self._executor.shutdown(wait=True, cancel_futures=True)

    async def submit(self, items: Sequence[T]) -> list[float]:
        """Queue the items and wait for their scores (same order)."""
        if self._queue is None:
            raise RuntimeError("batcher not started")
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in items]
        for item, future in zip(items, futures, strict=True):
            self._queue.put_nowait(_Pending(item, future))
        return list(await asyncio.gather(*futures))

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            window = await self._collect(self._queue)
            window = [pending for pending in window if not pending.future.done()]  # callers gone
            window.sort(key=lambda pending: pending.item.length)
            for batch in self._cut(window):
                await self._run_batch(batch)

    def _cut(self, window: list[_Pending[T]]) -> list[list[_Pending[T]]]:
        """Consecutive batches of a length-sorted window: a batch closes when it holds max_batch_size
        items or the next (longest so far) item would take its padded size past max_batch_tokens. An
        item over the token budget on its own still runs, alone."""
        batches: list[list[_Pending[T]]] = []
        batch: list[_Pending[T]] = []
        for pending in window:
            padded = (len(batch) + 1) * pending.item.length
            full = len(batch) == self.max_batch_size
            if batch and (full or (self.max_batch_tokens is not None and padded > self.max_batch_tokens)):
                batches.append(batch)
                batch = []
            batch.append(pending)
        if batch:
            batches.append(batch)
        return batches

    async def _collect(self, queue: asyncio.Queue[_Pending[T]]) -> list[_Pending[T]]:
        window = [await queue.get()]
        deadline = time.monotonic() + self.max_wait_s
        while len(window) < self.max_batch_size:
            if not queue.empty():
                window.append(queue.get_nowait())
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                async with asyncio.timeout(remaining):
                    window.append(await queue.get())
            except TimeoutError:
                break
        while len(window) < self.sort_window and not queue.empty():
            window.append(queue.get_nowait())
        return window

    async def _run_batch(self, batch: list[_Pending[T]]) -> None:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            scores = await loop.run_in_executor(self._executor, self._checked, [p.item for p in batch])
        except Exception as exc:
            if len(batch) > 1:
                log.warning("batch of %d failed (%s); re-running item by item", len(batch), exc)
                for pending in batch:
                    await self._run_batch([pending])
                return
            _resolve(batch[0].future, exc=exc)
            return
        for pending, score in zip(batch, scores, strict=True):
            _resolve(pending.future, result=score)
        if self.on_batch is not None:
            self.on_batch(len(batch), time.perf_counter() - started)

    def _checked(self, items: list[T]) -> list[float]:
        scores = self.score_batch(items)
        if len(scores) != len(items):
            raise ValueError(f"scored {len(items)} items but got {len(scores)} scores")
        return scores


def _resolve(
    future: asyncio.Future[float], result: float | None = None, exc: BaseException | None = None
) -> None:
    if future.done():  # the request was cancelled (client went away) while its batch ran
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)  # type: ignore[arg-type]

"""Running many coroutines a few at a time, and many calls as one.

``asyncio.gather`` over a whole batch with an ``asyncio.Semaphore`` inside each task parks every
task beyond the limit on the semaphore, and ``Semaphore.acquire`` scans its waiters on each call
(Python 3.11): 8.5% of egress's samples in ``make bench-profile`` with 500-event batches. A fixed
set of workers taking the next item does the same with no waiters at all.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


async def bounded_map(fn: Callable[[T], Awaitable[R]], items: Sequence[T], limit: int) -> list[R]:
    """``[await fn(item) for item in items]`` with at most ``limit`` calls in flight, results in
    the items' order. An exception from ``fn`` propagates (after the other workers stop taking
    new items); callers that must finish every item return their failures instead of raising."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    results: list[R | None] = [None] * len(items)
    todo = iter(enumerate(items))

    async def worker() -> None:
        for i, item in todo:  # one shared iterator: each item is taken once
            results[i] = await fn(item)

    await asyncio.gather(*(worker() for _ in range(min(limit, len(items)))))
    return results  # type: ignore[return-value]


class Coalescing(Generic[T, R]):
    """Calls from concurrent coroutines gathered into one call of ``run_batch``: while a batch
    runs, the calls that arrive wait and go together in the next one, so a lone call runs at
    once and a busy moment pays one thread hop and one transaction (or one request) for many.
    A plain ``run_batch`` runs in a worker thread, a coroutine function on the event loop.
    ``run_batch`` returns one result per item, in order; if it raises, every call of that batch
    raises the same exception. At most ``max_batch`` items per call."""

    def __init__(self, run_batch: Callable[[list[T]], Sequence[R] | Awaitable[Sequence[R]]],
                 max_batch: int = 256) -> None:
        self._run_batch = run_batch
        self._on_loop = inspect.iscoroutinefunction(run_batch)
        self._max_batch = max_batch
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._draining = False
        self._task: asyncio.Task | None = None  # held: the loop keeps only a weak reference

    async def __call__(self, item: T) -> R:
        fut: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, fut))
        if not self._draining:
            self._draining = True
            self._task = asyncio.get_running_loop().create_task(self._drain())
        return await fut

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[: self._max_batch]
                del self._waiting[: self._max_batch]
                try:
                    items = [item for item, _ in batch]
                    results = (await self._run_batch(items) if self._on_loop  # type: ignore[misc]
                               else await asyncio.to_thread(self._run_batch, items))
                    if len(results) != len(batch):
                        raise RuntimeError(f"run_batch gave {len(results)} results for {len(batch)} items")
                except BaseException as exc:  # noqa: BLE001 - each caller gets it
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                    if isinstance(exc, asyncio.CancelledError):  # shutting down: nobody is served
                        for _, fut in self._waiting:
                            fut.cancel()
                        self._waiting.clear()
                        raise
                    continue
                for (_, fut), result in zip(batch, results, strict=True):
                    if not fut.done():
                        fut.set_result(result)
        finally:
            self._draining = False

"""bounded_map: every item once, results in order, never more than the limit in flight."""

from __future__ import annotations

import asyncio
import time

import pytest

from services.core.concurrency import Coalescing, bounded_map


def test_every_item_is_handled_once_in_order_with_at_most_the_limit_in_flight():
    in_flight = peak = 0
    seen: list[int] = []

    async def handle(x: int) -> int:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        seen.append(x)
        await asyncio.sleep(0.001 * (x % 3))  # finishing out of order
        in_flight -= 1
        return x * x

    results = asyncio.run(bounded_map(handle, list(range(50)), 4))
    assert results == [x * x for x in range(50)]
    assert sorted(seen) == list(range(50))
    assert peak == 4


def test_an_empty_batch_gives_an_empty_list_and_a_zero_limit_is_refused():
    async def handle(x: int) -> int:
        return x

    assert asyncio.run(bounded_map(handle, [], 8)) == []
    with pytest.raises(ValueError, match="at least 1"):
        asyncio.run(bounded_map(handle, [1], 0))


def test_a_failing_call_raises_to_the_caller():
    async def handle(x: int) -> int:
        if x == 3:
            raise RuntimeError("item 3")
        return x

    with pytest.raises(RuntimeError, match="item 3"):
        asyncio.run(bounded_map(handle, list(range(10)), 2))


def test_calls_arriving_while_a_batch_runs_go_together_in_the_next_one_each_with_its_result():
    batches: list[list[int]] = []

    def run_batch(items: list[int]) -> list[int]:
        batches.append(list(items))
        time.sleep(0.05)  # the worker thread is busy while more calls arrive
        return [x * 10 for x in items]

    async def go():
        one = Coalescing(run_batch)
        first = asyncio.create_task(one(0))
        await asyncio.sleep(0.01)  # the first call is running alone
        rest = await asyncio.gather(*(one(x) for x in range(1, 21)))
        return await first, rest

    first, rest = asyncio.run(go())
    assert first == 0 and rest == [x * 10 for x in range(1, 21)]
    assert batches[0] == [0]
    assert sorted(x for b in batches[1:] for x in b) == list(range(1, 21))
    assert len(batches) <= 3  # the twenty waited together, not one thread hop each


def test_a_failing_batch_fails_each_of_its_calls_and_the_next_calls_still_run():
    def run_batch(items: list[int]) -> list[int]:
        if 3 in items:
            raise RuntimeError("database is locked")
        return items

    async def go():
        one = Coalescing(run_batch)
        failed = await asyncio.gather(one(3), return_exceptions=True)
        return failed, await one(4)

    failed, later = asyncio.run(go())
    assert isinstance(failed[0], RuntimeError) and "locked" in str(failed[0])
    assert later == 4


def test_a_batch_larger_than_the_limit_is_split():
    sizes: list[int] = []

    def run_batch(items: list[int]) -> list[int]:
        sizes.append(len(items))
        return items

    async def go():
        one = Coalescing(run_batch, max_batch=5)
        return await asyncio.gather(*(one(x) for x in range(12)))

    assert asyncio.run(go()) == list(range(12))
    assert max(sizes) <= 5 and sum(sizes) == 12

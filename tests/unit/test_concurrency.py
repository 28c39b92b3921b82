"""bounded_map: every item once, results in order, never more than the limit in flight."""

from __future__ import annotations

import asyncio

import pytest

from services.core.concurrency import bounded_map


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

"""map_chunks: the one splitter the clients and the RAFT stages share: results in chunk order, at most
``in_flight`` calls at once, progress in items, the first failure raised as is with the rest cancelled."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from raftflow.chunks import chunk_starts, map_chunks


def test_results_come_in_chunk_order_with_at_most_in_flight_calls() -> None:
    running, peak, reports = 0, 0, []

    async def call(start: int) -> list[int]:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.001 * (10 - start))  # later chunks finish first
        running -= 1
        return list(range(start, min(start + 3, 10)))

    got = asyncio.run(map_chunks(10, 3, call, in_flight=2, progress=reports.append))
    assert [x for chunk in got for x in chunk] == list(range(10))
    assert peak == 2
    # 0 first, then one report per finished chunk, each adding that chunk's size (3, 3, 3, 1)
    assert reports[0] == 0 and reports[-1] == 10 and len(reports) == 5
    assert sorted(b - a for a, b in itertools.pairwise(reports)) == [1, 3, 3, 3]


def test_the_first_failure_is_raised_as_is_and_the_others_cancelled() -> None:
    cancelled: list[int] = []

    async def call(start: int) -> int:
        if start == 0:
            raise ConnectionError("chunk 0 failed")
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.append(start)
            raise
        return start

    with pytest.raises(ConnectionError, match="chunk 0"):
        asyncio.run(map_chunks(8, 2, call, in_flight=4))
    assert sorted(cancelled) == [2, 4, 6]


def test_chunk_starts() -> None:
    assert chunk_starts(7, 3) == [0, 3, 6]
    assert chunk_starts(0, 3) == []
    with pytest.raises(ValueError, match=">= 1"):
        chunk_starts(5, 0)

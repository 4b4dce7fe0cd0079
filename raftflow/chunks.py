"""Large calls split into chunks, a few chunks in flight: one implementation for the service clients
and the RAFT stages.

The RAFT stages (``raftflow/stages.py``) chunk a whole iteration's prompts, because each chunk is also
the unit of seeding, progress and overlapped scoring; the clients chunk what other callers hand them
(held-out evaluation, log-probabilities, ``raftflow score``) so any size fits a server's request limit.
The orchestrator builds its clients with the stages' chunk size, so a stage chunk is one request, and
the sample stage keeps the generator client's number of requests in flight per replica: a generator
never idles between two chunks, whoever did the splitting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

# Requests in flight per server. The generator: two, so the next chunk is queued when one finishes (it
# batches one request at a time; more would only wait). The rewarder: four, so its dynamic batcher has
# requests to coalesce into full batches, few enough that one huge call does not monopolise its queue.
# The RAFT loop scores one request at a time per rewarder replica instead (orchestrator.raft_loop's
# Backends): a coalesced batch changes rewards in their last float bits, and a run's scores must be
# the same whenever they are computed.
GENERATOR_REQUESTS_IN_FLIGHT = 2
REWARDER_REQUESTS_IN_FLIGHT = 4


def chunk_starts(total: int, size: int) -> list[int]:
    """The start offsets of ``total`` items in chunks of ``size``."""
    if size < 1:
        raise ValueError(f"chunk size must be >= 1, got {size}")
    return list(range(0, total, size))


async def map_chunks(
    total: int,
    size: int,
    call: Callable[[int], Awaitable[T]],
    in_flight: int,
    progress: Callable[[int], object] | None = None,
) -> list[T]:
    """``call(start)`` for every chunk of ``total`` items, at most ``in_flight`` at once, results in
    chunk order. ``progress(done)`` is told how many items are finished before the first call and after
    each one (the orchestrator's progress callback also raises when a run is cancelled). On the first
    failure the other calls are cancelled and that failure is raised as is (not an ExceptionGroup), so
    callers can catch the clients' typed errors."""
    gate = asyncio.Semaphore(max(1, in_flight))
    done = 0
    if progress is not None:
        progress(0)

    async def run(start: int) -> T:
        nonlocal done
        async with gate:
            value = await call(start)
        done += min(size, total - start)
        if progress is not None:
            progress(done)
        return value

    tasks = [asyncio.ensure_future(run(start)) for start in chunk_starts(total, size)]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise

"""The dynamic batcher on its own, with a plain scoring function (score = text length) that records
the batches it was given."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from services.rewarder.batcher import DynamicBatcher


@dataclass(frozen=True)
class Text:
    text: str

    @property
    def length(self) -> int:
        return len(self.text)


class Recorder:
    """Scores a text by its length; raises on texts containing 'bad'; remembers every batch."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def __call__(self, items: list[Text]) -> list[float]:
        self.batches.append([item.text for item in items])
        if any("bad" in item.text for item in items):
            raise ValueError("bad item")
        return [float(item.length) for item in items]


async def with_batcher(recorder: Recorder, work, **options):
    """Run ``work(batcher)`` against a started batcher built with ``options``."""
    batcher = DynamicBatcher(recorder, **options)
    await batcher.start()
    try:
        return await work(batcher)
    finally:
        await batcher.stop()


def test_concurrent_requests_share_batches_and_get_their_own_answers():
    recorder = Recorder()
    texts = [["a" * (i + 1)] for i in range(10)]

    async def work(batcher):
        return await asyncio.gather(*(batcher.submit([Text(t) for t in group]) for group in texts))

    answers = asyncio.run(with_batcher(recorder, work, max_batch_size=4, max_wait_s=0.05))
    assert answers == [[float(i + 1)] for i in range(10)]
    assert [len(batch) for batch in recorder.batches] == [4, 4, 2]


def test_a_window_is_sorted_by_length_before_it_is_cut_into_batches():
    recorder = Recorder()
    lengths = [7, 1, 9, 3, 5, 2, 8, 4]

    async def work(batcher):
        return await batcher.submit([Text("x" * n) for n in lengths])

    answers = asyncio.run(with_batcher(recorder, work, max_batch_size=3, max_wait_s=0.0))
    assert answers == [float(n) for n in lengths]  # request order kept
    assert [[len(t) for t in batch] for batch in recorder.batches] == [[1, 2, 3], [4, 5, 7], [8, 9]]


def test_batches_are_cut_at_the_padded_token_budget():
    recorder = Recorder()
    lengths = [2, 2, 3, 5, 6, 20]

    async def work(batcher):
        return await batcher.submit([Text("x" * n) for n in lengths])

    answers = asyncio.run(with_batcher(recorder, work, max_batch_size=8, max_wait_s=0.0, max_batch_tokens=12))
    assert answers == [float(n) for n in lengths]
    # 3 x 3 = 9 fits 12, a 4th item of 5 would pad to 20; 2 x 6 = 12 fits; 20 alone exceeds but runs.
    assert [[len(t) for t in batch] for batch in recorder.batches] == [[2, 2, 3], [5, 6], [20]]


def test_without_waiting_a_lone_item_runs_at_once():
    recorder = Recorder()

    async def work(batcher):
        loop = asyncio.get_running_loop()
        started = loop.time()
        answer = await batcher.submit([Text("hello")])
        return answer, loop.time() - started

    answer, seconds = asyncio.run(with_batcher(recorder, work, max_batch_size=8, max_wait_s=0.0))
    assert answer == [5.0] and seconds < 0.5


def test_a_failing_batch_is_rerun_item_by_item():
    recorder = Recorder()

    async def work(batcher):
        requests = [batcher.submit([Text(text)]) for text in ("good", "bad one", "fine!")]
        return await asyncio.gather(*requests, return_exceptions=True)

    good, bad, fine = asyncio.run(with_batcher(recorder, work, max_batch_size=8, max_wait_s=0.05))
    assert (good, fine) == ([4.0], [5.0])
    assert isinstance(bad, ValueError)
    assert len(recorder.batches[0]) == 3 and all(len(batch) == 1 for batch in recorder.batches[1:])


def test_a_cancelled_request_does_not_stop_the_loop():
    recorder = Recorder()

    async def work(batcher):
        abandoned = asyncio.ensure_future(batcher.submit([Text("gone")]))
        await asyncio.sleep(0)
        abandoned.cancel()
        return await batcher.submit([Text("still here")])

    assert asyncio.run(with_batcher(recorder, work, max_batch_size=8, max_wait_s=0.02)) == [10.0]


def test_submitting_before_start_is_an_error():
    batcher = DynamicBatcher(Recorder(), max_batch_size=2, max_wait_s=0.0)
    with pytest.raises(RuntimeError, match="not started"):
        asyncio.run(batcher.submit([Text("x")]))

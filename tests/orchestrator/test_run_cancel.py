"""A cancel (or a shutdown) ends a run's stage at once, cancelling the calls in flight instead of waiting
for them: with a real generator behind the sampler, that closes its requests and the generator drops
them (tests/reliability/test_abandoned_requests.py). In-process fakes here, milliseconds."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from orchestrator.raft_loop import Backends, RunCancelled, RunContext, RunInterrupted, execute_run
from raftflow.data import write_text_only
from raftflow.schemas.generation import Sample, SamplingParams
from raftflow.schemas.runs import RunRequest
from tests.orchestrator.test_raft_loop import PROMPTS, Fakes, Reporter


def run_request(tmp: Path) -> RunRequest:
    write_text_only(tmp / "prompts.json", PROMPTS)
    return RunRequest(policy="base", prompts=str(tmp / "prompts.json"), k=3, prompts_per_iteration=4)


class StuckSampler(Fakes):
    """Samples that take 5 s (a busy generator); records each call cancelled before then."""

    def __init__(self) -> None:
        super().__init__()
        self.started = threading.Event()
        self.endings: list[str] = []

    async def sample(self, prompts: list[str], n: int, params: SamplingParams) -> list[list[Sample]]:
        self.started.set()
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            self.endings.append("cancelled")
            raise
        return await super().sample(prompts, n, params)


@pytest.mark.parametrize(("event", "raised"), [("cancel", RunCancelled), ("shutdown", RunInterrupted)])
def test_a_cancel_or_shutdown_cancels_the_sample_calls_in_flight(
    tmp_path: Path, event: str, raised: type[Exception]
) -> None:
    fakes = StuckSampler()
    ctx = RunContext(
        run_id="r", request=run_request(tmp_path), run_dir=tmp_path / "run", reporter=Reporter(),
        sample_chunk_prompts=2,
    )  # fmt: skip
    backends = Backends(sampler=fakes, scorer=fakes, trainer=fakes, policy_server=fakes, sample_concurrency=2)

    def set_event_once_sampling() -> None:
        fakes.started.wait(10)
        time.sleep(0.2)  # both chunks in flight
        getattr(ctx, event).set()  # from another thread, as the API's cancel route does

    threading.Thread(target=set_event_once_sampling, daemon=True).start()
    started = time.monotonic()
    with pytest.raises(raised):
        asyncio.run(execute_run(ctx, backends, 0, "base"))
    assert time.monotonic() - started < 2.0
    assert fakes.endings == ["cancelled", "cancelled"]  # both calls in flight, not awaited to the end
    assert not (tmp_path / "run" / "iter-000" / "samples.json").exists()  # the stage resumes from scratch


def test_an_uncancelled_stage_returns_its_result(tmp_path: Path) -> None:
    ctx = RunContext(run_id="r", request=run_request(tmp_path), run_dir=tmp_path / "run", reporter=Reporter())

    async def work() -> int:
        await asyncio.sleep(0.25)  # longer than one poll of the cancel event
        return 7

    assert asyncio.run(ctx.interruptible(work())) == 7

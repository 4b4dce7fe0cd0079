"""The RAFT loop itself, with in-process fakes behind ``Backends`` (no processes, milliseconds): the order
of the stages, what each call receives, and resume from every stage boundary giving exactly the
undisturbed run's files and calls."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
from pathlib import Path

import pytest

from orchestrator.raft_loop import Backends, RunContext, execute_run
from raftflow.data import load_pairs, write_text_only
from raftflow.schemas.generation import Sample, SamplingParams
from raftflow.schemas.jobs import JobResult, SFTJob
from raftflow.schemas.runs import RunRequest, StageProgress

PROMPTS = [f"prompt {i}" for i in range(6)]


class Fakes:
    """A policy whose samples are a pure function of (policy, prompt, seed, j), a reward that hashes the
    text, a trainer that names its checkpoint after the job: every call is recorded."""

    def __init__(self, fail_at: str | None = None) -> None:
        self.served = "base"
        self.calls: list[tuple] = []
        self.fail_at = fail_at

    def _maybe_fail(self, stage: str) -> None:
        if self.fail_at == stage:
            raise ConnectionError(f"killed during {stage}")

    async def sample(self, prompts: list[str], n: int, params: SamplingParams) -> list[list[Sample]]:
        self._maybe_fail("sample" if n > 1 else "eval")  # the held-out evaluation samples one each
        self.calls.append(("sample", self.served, tuple(prompts), n, params.seed))
        # The text says which policy, prompt, seed and sample j of n it is.
        return [
            [Sample(text=f"{self.served}:{p}:{params.seed}:{j}/{n}", finish_reason="stop",
                    completion_tokens=5) for j in range(n)]
            for p in prompts
        ]  # fmt: skip

    async def score(self, prompts: list[str], responses: list[str]) -> list[float]:
        self._maybe_fail("score")
        held_out = all(r.endswith("/1") for r in responses)  # the evaluation samples one per prompt
        self.calls.append(("score", len(responses), "eval" if held_out else "run"))
        return [int(hashlib.sha256(r.encode()).hexdigest()[:6], 16) / 16**6 for r in responses]

    async def train(self, job: SFTJob, on_progress) -> JobResult:
        self._maybe_fail("train")
        self.calls.append(("train", job.job_id, job.model, len(load_pairs(job.data))))
        return JobResult(
            job_id=job.job_id, kind="sft", checkpoint=f"ckpt-{job.job_id}", metrics={"train_loss": 1.0}
        )

    async def ensure_loaded(self, checkpoint: str) -> None:
        self._maybe_fail("load")
        if checkpoint != self.served:
            self.calls.append(("load", checkpoint))
        self.served = checkpoint


class Reporter:
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def stage(self, iteration: int, progress: StageProgress) -> None:
        self.events.append(("stage", iteration, progress.stage))

    def iteration_started(self, iteration: int) -> None:
        self.events.append(("started", iteration))

    def iteration_finished(self, iteration: int, checkpoint: str, metrics: dict[str, float]) -> None:
        self.events.append(("finished", iteration, checkpoint))


def run(tmp: Path, fakes: Fakes, start: int = 0, policy: str = "base") -> tuple[str, Reporter]:
    prompts, eval_prompts = tmp / "prompts.json", tmp / "eval.json"
    write_text_only(prompts, PROMPTS)
    write_text_only(eval_prompts, ["held out 1", "held out 2"])
    request = RunRequest(
        policy="base",
        prompts=str(prompts),
        eval_prompts=str(eval_prompts),
        k=3,
        prompts_per_iteration=4,
        num_iterations=2,
    )
    reporter = Reporter()
    ctx = RunContext(
        run_id="r", request=request, run_dir=tmp / "run", reporter=reporter, sample_chunk_prompts=3
    )
    backends = Backends(sampler=fakes, scorer=fakes, trainer=fakes, policy_server=fakes)
    return asyncio.run(execute_run(ctx, backends, start, policy)), reporter


def stage_files(tmp: Path) -> dict[str, str]:
    return {
        str(p.relative_to(tmp)): p.read_text()
        for p in sorted((tmp / "run").glob("iter-*/*.json"))
        if p.name != "metrics.json"  # wall times differ
    }


def test_two_iterations_call_each_stage_in_order_on_the_current_policy(tmp_path: Path) -> None:
    fakes = Fakes()
    final, reporter = run(tmp_path, fakes)
    assert final == "ckpt-r-iter001"
    samples = [c for c in fakes.calls if c[0] == "sample" and c[3] > 1]  # not the held-out evaluation's
    evals = [c for c in fakes.calls if c[0] == "sample" and c[3] == 1]
    assert [c[1] for c in evals] == ["ckpt-r-iter000", "ckpt-r-iter001"]  # each new policy, after its load
    # 4 prompts per iteration in chunks of 3 (one seed per chunk), prompts wrapping around the 6.
    assert [len(c[2]) for c in samples] == [3, 1, 3, 1]
    assert [c[1] for c in samples] == ["base", "base", "ckpt-r-iter000", "ckpt-r-iter000"]
    assert len({c[4] for c in samples}) == 4  # a distinct seed per (iteration, chunk)
    drawn = [p for c in samples for p in c[2]]
    assert sorted(drawn[:4] + drawn[4:6]) == sorted(PROMPTS)  # without replacement until the data runs out
    trains = [c for c in fakes.calls if c[0] == "train"]
    assert trains == [("train", "r-iter000", "base", 4), ("train", "r-iter001", "ckpt-r-iter000", 4)]
    assert [c for c in fakes.calls if c[0] == "load"] == [
        ("load", "ckpt-r-iter000"),
        ("load", "ckpt-r-iter001"),
    ]
    stages = [e[2] for e in reporter.events if e[0] == "stage" and e[1] == 0]
    assert stages[0] == "sample" and stages.index("score") < stages.index("select") < stages.index("train")
    assert ("finished", 1, "ckpt-r-iter001") in reporter.events


@pytest.mark.parametrize("crash", ["sample", "score", "train", "load", "eval"])
def test_a_crash_in_any_stage_resumes_to_the_undisturbed_result(tmp_path: Path, crash: str) -> None:
    """Kill the loop inside each stage of iteration 0, then run again from the same directory: no
    finished stage is redone, and every file matches a run that was never interrupted."""
    undisturbed = tmp_path / "undisturbed"
    run(undisturbed, Fakes())

    resumed = tmp_path / "resumed"
    with pytest.raises(ConnectionError, match=crash):
        run(resumed, Fakes(fail_at=crash))
    after_crash = set(stage_files(resumed))
    fakes = Fakes()
    final, _ = run(resumed, fakes)
    assert final == "ckpt-r-iter001"
    assert stage_files(resumed) == stage_files(undisturbed)
    if "run/iter-000/samples.json" in after_crash:  # sampled before the crash: not sampled again
        assert all(c[1] != "base" for c in fakes.calls if c[0] == "sample" and c[3] > 1)
    if "run/iter-000/scores.json" in after_crash:
        assert sum(c[1] for c in fakes.calls if c[0] == "score" and c[2] == "run") == 12  # iteration 1 only
    # The held-out evaluation runs after the load, on each iteration's new policy, once per iteration.
    evaluated = [c[1] for c in fakes.calls if c[0] == "sample" and c[3] == 1]
    assert evaluated == ["ckpt-r-iter000", "ckpt-r-iter001"]


def test_resume_from_a_recorded_iteration_starts_at_the_next(tmp_path: Path) -> None:
    """What the runner does after a restart once iteration 0 is recorded: start at 1 from its checkpoint."""
    full = tmp_path / "full"
    run(full, Fakes())
    partial = tmp_path / "partial"
    run(partial, Fakes())
    shutil.rmtree(partial / "run" / "iter-001")
    fakes = Fakes()
    final, reporter = run(partial, fakes, start=1, policy="ckpt-r-iter000")
    assert final == "ckpt-r-iter001"
    assert {c[1] for c in fakes.calls if c[0] == "sample" and c[3] > 1} == {"ckpt-r-iter000"}
    assert not [e for e in reporter.events if e[0] == "started" and e[1] == 0]
    assert stage_files(partial) == stage_files(full)


class SleepyFakes(Fakes):
    """A generator that can sleep: sampling or loading while asleep is an error, as on vLLM."""

    asleep = False

    async def sleep(self) -> None:
        self.calls.append(("sleep",))
        self.asleep = True

    async def wake_up(self) -> None:
        self.calls.append(("wake",))
        self.asleep = False

    async def sample(self, prompts, n, params):
        assert not self.asleep, "sampled while asleep"
        return await super().sample(prompts, n, params)

    async def ensure_loaded(self, checkpoint: str) -> None:
        assert not self.asleep, "loaded while asleep"
        await super().ensure_loaded(checkpoint)

    async def train(self, job, on_progress):
        assert self.asleep, "trained while the generator held its memory"
        return await super().train(job, on_progress)


def test_sleep_generator_while_training_frees_it_for_each_train_stage_and_wakes_it_on_failure(
    tmp_path: Path,
) -> None:
    prompts = tmp_path / "prompts.json"
    write_text_only(prompts, PROMPTS)
    request = RunRequest(
        policy="base",
        prompts=str(prompts),
        k=3,
        prompts_per_iteration=4,
        num_iterations=2,
        sleep_generator_while_training=True,
    )
    fakes = SleepyFakes()
    ctx = RunContext(run_id="r", request=request, run_dir=tmp_path / "run", reporter=Reporter())
    backends = Backends(sampler=fakes, scorer=fakes, trainer=fakes, policy_server=fakes)
    asyncio.run(execute_run(ctx, backends, 0, "base"))
    order = [c[0] for c in fakes.calls if c[0] in ("sleep", "train", "wake", "load", "sample")]
    # per iteration: (wake) sample ... sleep train wake load
    assert order.count("sleep") == 2 and order.count("train") == 2
    for i, name in enumerate(order):
        if name == "train":
            assert order[i - 1] == "sleep" and order[i + 1] == "wake" and order[i + 2] == "load"
    assert not fakes.asleep

    failing = SleepyFakes(fail_at="train")
    ctx = RunContext(run_id="r2", request=request, run_dir=tmp_path / "run2", reporter=Reporter())
    backends = Backends(sampler=failing, scorer=failing, trainer=failing, policy_server=failing)
    with pytest.raises(ConnectionError):
        asyncio.run(execute_run(ctx, backends, 0, "base"))
    assert not failing.asleep  # woken although training failed


class YieldingFakes(Fakes):
    """Sampling that gives the event loop a turn, as a real HTTP call does."""

    async def sample(self, prompts, n, params):
        await asyncio.sleep(0.01)
        return await super().sample(prompts, n, params)


def test_scoring_overlaps_sampling_and_gives_the_same_scores(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.json"
    write_text_only(prompts, PROMPTS)
    request = RunRequest(policy="base", prompts=str(prompts), k=3, prompts_per_iteration=6, num_iterations=1)
    scores = {}
    for overlap in (True, False):
        fakes = YieldingFakes()
        ctx = RunContext(
            run_id="r",
            request=request,
            run_dir=tmp_path / f"run-{overlap}",
            reporter=Reporter(),
            sample_chunk_prompts=2,
            overlap_scoring=overlap,
        )
        backends = Backends(sampler=fakes, scorer=fakes, trainer=fakes, policy_server=fakes)
        asyncio.run(execute_run(ctx, backends, 0, "base"))
        kinds = [c[0] for c in fakes.calls if c[0] in ("sample", "score")]
        last_sample = max(i for i, kind in enumerate(kinds) if kind == "sample")
        first_score = kinds.index("score")
        # overlap: chunks are scored while later ones are sampled; without: only after the last one
        assert (first_score < last_sample) is overlap, kinds
        scores[overlap] = (tmp_path / f"run-{overlap}" / "iter-000" / "scores.json").read_text()
    assert scores[True] == scores[False]

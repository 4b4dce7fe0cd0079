"""The diversity levers of a run, on the loop itself with in-process backends (no services): the
KL-penalised ranking reward and SFT pairs mixed into each fine-tuning set."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from orchestrator.raft_loop import Backends, RunContext, run_iteration
from raftflow.data import load_pairs, write_text2text, write_text_only
from raftflow.schemas.generation import Sample, SamplingParams
from raftflow.schemas.jobs import JobResult, SFTJob
from raftflow.schemas.runs import RunRequest, StageProgress

# Two samples per prompt: "loved" scores higher, but the policy already puts far more mass on it than
# the initial policy did (a large log p - log p0).
SAMPLES = ["a loved answer", "a plain answer"]
REWARD = {"a loved answer": 1.0, "a plain answer": 0.6}
LOG_RATIO = {"a loved answer": 2.0, "a plain answer": 0.1}


class Fakes:
    def __init__(self) -> None:
        self.trained: list[SFTJob] = []
        self.served = "policy"
        self.logprob_calls = 0

    async def sample(self, prompts: list[str], n: int, params: SamplingParams) -> list[list[Sample]]:
        return [
            [
                Sample(text=t, finish_reason="stop", completion_tokens=3, token_ids=[7, 8, 0])
                for t in SAMPLES[:n]
            ]
            for _ in prompts
        ]

    async def score(self, prompts: list[str], responses: list[str]) -> list[float]:
        return [REWARD[r] for r in responses]

    async def train(self, job: SFTJob, on_progress) -> JobResult:
        self.trained.append(job)
        return JobResult(job_id=job.job_id, kind="sft", checkpoint=f"ckpt-{len(self.trained)}", metrics={})

    async def ensure_loaded(self, checkpoint: str) -> None:
        self.served = checkpoint

    async def ensure_reference(self, checkpoint: str) -> None:
        assert checkpoint == "policy"  # KL is to the run's initial policy

    async def sample_logprobs(
        self, prompts: list[str], samples: list[Sample], model: str = "current"
    ) -> list[float]:
        self.logprob_calls += 1
        assert all(s.token_ids == [7, 8, 0] for s in samples)  # the sampled ids reach the scoring call
        return [-5.0 + (LOG_RATIO[s.text] if model == "current" else 0.0) for s in samples]


class Reporter:
    def stage(self, iteration: int, progress: StageProgress) -> None: ...

    def iteration_started(self, iteration: int) -> None: ...

    def iteration_finished(self, iteration: int, checkpoint: str, metrics: dict[str, float]) -> None:
        self.metrics = metrics


def run_once(tmp_path: Path, current: str = "after-1", **options: object) -> tuple[Fakes, Reporter, Path]:
    """One iteration whose current policy is ``current`` (the run started from "policy")."""
    prompts = tmp_path / "prompts.json"
    write_text_only(prompts, [f"question {i}" for i in range(4)])
    request = RunRequest(policy="policy", prompts=str(prompts), k=2, prompts_per_iteration=4, **options)
    fakes, reporter = Fakes(), Reporter()
    ctx = RunContext(run_id="run", request=request, run_dir=tmp_path / "run", reporter=reporter)
    backends = Backends(sampler=fakes, scorer=fakes, trainer=fakes, policy_server=fakes)
    asyncio.run(run_iteration(ctx, backends, 0, current, [f"question {i}" for i in range(4)], []))
    return fakes, reporter, ctx.iteration_dir(0) / "selected.json"


def test_reward_alone_keeps_the_favoured_sample(tmp_path: Path) -> None:
    _, reporter, selected = run_once(tmp_path)
    assert {pair.response for pair in load_pairs(selected)} == {"a loved answer"}
    assert "sample_kl" not in reporter.metrics


def test_kl_penalised_ranking_holds_back_what_the_policy_already_overweights(tmp_path: Path) -> None:
    # 1.0 - 0.5 * 2.0 = 0.0 < 0.6 - 0.5 * 0.1 = 0.55: the plain answer wins.
    _, reporter, selected = run_once(tmp_path, kl_coef=0.5)
    assert {pair.response for pair in load_pairs(selected)} == {"a plain answer"}
    assert reporter.metrics["sample_kl"] == pytest.approx(1.05)
    assert reporter.metrics["selected_kl"] == pytest.approx(0.1)
    assert reporter.metrics["selected_reward"] == pytest.approx(0.6)  # the raw reward of what was kept
    cached = json.loads((selected.parent / "sample_kl.json").read_text())
    assert cached == [[pytest.approx(2.0), pytest.approx(0.1)]] * 4  # stored: a resume does not rescore


def test_the_initial_policy_has_zero_kl_without_a_forward_pass(tmp_path: Path) -> None:
    fakes, reporter, selected = run_once(tmp_path, current="policy", kl_coef=0.5)
    assert fakes.logprob_calls == 0  # log p - log p0 of the reference itself: 0 by definition, not computed
    assert reporter.metrics["sample_kl"] == 0.0
    assert {pair.response for pair in load_pairs(selected)} == {"a loved answer"}  # reward alone decides
    assert json.loads((selected.parent / "sample_kl.json").read_text()) == [[0.0, 0.0]] * 4


def test_sft_pairs_make_the_asked_share_of_each_fine_tuning_set(tmp_path: Path) -> None:
    sft = tmp_path / "sft.json"
    write_text2text(sft, [(f"sft prompt {i}", f"reference answer {i}") for i in range(10)])
    fakes, _, selected = run_once(tmp_path, sft_mix_data=str(sft), sft_mix_ratio=0.5)
    pairs = load_pairs(selected)
    assert len(pairs) == 8  # 4 kept samples + 4 SFT pairs: half of the set
    assert sum(p.response.startswith("reference answer") for p in pairs) == 4
    assert len({p.prompt for p in pairs if p.prompt.startswith("sft")}) == 4  # no pair twice
    assert fakes.trained[0].data == str(selected)


def test_mixing_needs_data_and_kl_needs_a_scoring_generator() -> None:
    with pytest.raises(ValueError, match="sft_mix_data"):
        RunRequest(policy="p", prompts="x", sft_mix_ratio=0.2)
    with pytest.raises(ValueError, match="kl_coef"):
        RunRequest(policy="p", prompts="x", kl_coef=0.1, generator_backend="tgi", prompt_format="hh")


class PromptDependentFakes(Fakes):
    """Question 0's answers score 1.0 higher than the others' (same two samples everywhere)."""

    async def score(self, prompts: list[str], responses: list[str]) -> list[float]:
        return [
            REWARD[r] + (1.0 if p == "question 0" else 0.0) for p, r in zip(prompts, responses, strict=True)
        ]


def test_reward_threshold_drops_prompts_whose_best_is_too_low(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "Fakes", PromptDependentFakes)
    _, reporter, selected = run_once(tmp_path, min_reward=1.5)
    assert [(p.prompt, p.response) for p in load_pairs(selected)] == [("question 0", "a loved answer")]
    assert reporter.metrics["filtered_prompts"] == 3
    assert reporter.metrics["selected_count"] == 1


def test_margin_filter_and_nothing_left_names_the_filter(tmp_path: Path) -> None:
    # best 1.0, median of (1.0, 0.6) 0.8: a margin of 0.2; asking 0.3 filters every prompt.
    _, reporter, selected = run_once(tmp_path / "a", min_reward_margin=0.1)
    assert len(load_pairs(selected)) == 4 and reporter.metrics["filtered_prompts"] == 0
    with pytest.raises(RuntimeError, match="4 prompts filtered by min_reward / min_reward_margin"):
        run_once(tmp_path / "b", min_reward_margin=0.3)
    assert not (tmp_path / "b" / "run" / "iter-000" / "selected.json").exists()


def test_stage_files_carry_their_prompts_and_old_tables_still_resume(tmp_path: Path) -> None:
    """samples.json / scores.json are the records `raftflow score` / `select` read; a run written
    before (bare P x K tables) resumes from them instead of sampling again."""
    _, _, selected = run_once(tmp_path / "new")
    samples = json.loads((selected.parent / "samples.json").read_text())
    assert [row["prompt"] for row in samples] == [f"question {i}" for i in range(4)]
    scores = json.loads((selected.parent / "scores.json").read_text())
    assert scores[0]["rewards"] == [1.0, 0.6] and scores[0]["samples"][0]["text"] == "a loved answer"
    assert samples[0]["samples"][0]["token_ids"] == [7, 8, 0]  # what the KL is of, kept for a resume

    old = tmp_path / "old" / "run" / "iter-000"
    old.mkdir(parents=True)
    table = [
        [{"text": t, "finish_reason": "stop", "completion_tokens": 3} for t in ("x y", "a plain answer")]
    ] * 4
    (old / "samples.json").write_text(json.dumps(table))
    (old / "scores.json").write_text(json.dumps([[0.9, 0.1]] * 4))
    _, reporter, selected = run_once(tmp_path / "old")
    assert {p.response for p in load_pairs(selected)} == {"x y"}  # from the stored tables, not resampled
    assert reporter.metrics["on_policy_reward"] == pytest.approx(0.9)  # first sample of each prompt
    assert reporter.metrics["reward_std"] == pytest.approx(0.4)


class TemperatureFakes(Fakes):
    """Samples "a loved answer" at the run's temperature and "a plain answer" at temperature 1 (the
    policy's own distribution), and records every sampling call's n and parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int, SamplingParams]] = []

    async def sample(self, prompts: list[str], n: int, params: SamplingParams) -> list[list[Sample]]:
        self.calls.append((n, params))
        text = SAMPLES[1] if params.temperature == 1.0 else SAMPLES[0]
        sample = Sample(text=text, finish_reason="stop", completion_tokens=3, token_ids=[7, 8, 0])
        return [[sample] * n for _ in prompts]


def test_kl_to_initial_is_estimated_at_temperature_1_with_one_seed_per_run(tmp_path: Path) -> None:
    """E over p_T of log p - log p0 is not KL(p || p0): the KL's held-out samples are drawn at
    temperature 1 without top-p / top-k, the reward's at the run's decoding; both with one seed and
    the full length budget for the whole run, so two iterations differ by their weights alone."""
    prompts = [f"question {i}" for i in range(4)]
    request = RunRequest(
        policy="policy",
        prompts=str(tmp_path / "unused.json"),
        k=2,
        prompts_per_iteration=4,
        temperature=0.7,
        top_p=0.9,
        top_k=20,
        min_new_tokens=8,
        max_new_tokens=32,
    )
    fakes, reporter = TemperatureFakes(), Reporter()
    ctx = RunContext(run_id="run", request=request, run_dir=tmp_path / "run", reporter=reporter)
    backends = Backends(sampler=fakes, scorer=fakes, trainer=fakes, policy_server=fakes)
    for index in (0, 1):
        asyncio.run(
            run_iteration(ctx, backends, index, f"after-{index}", prompts, ["held out 1", "held out 2"])
        )

    assert reporter.metrics["kl_to_initial"] == pytest.approx(LOG_RATIO["a plain answer"])  # the T=1 samples
    assert reporter.metrics["eval_reward"] == pytest.approx(REWARD["a loved answer"])  # the run's decoding
    held_out = [params for n, params in fakes.calls if n == 1]
    reward_calls = [p for p in held_out if p.temperature == 0.7]
    kl_calls = [p for p in held_out if p.temperature == 1.0]
    assert len(reward_calls) == len(kl_calls) == 2  # one each per iteration
    assert all((p.top_p, p.top_k, p.max_tokens, p.min_tokens) == (0.9, 20, 32, None) for p in reward_calls)
    assert all((p.top_p, p.top_k, p.max_tokens, p.min_tokens) == (1.0, 0, 32, None) for p in kl_calls)
    assert reward_calls[0].seed == reward_calls[1].seed != kl_calls[0].seed == kl_calls[1].seed


def test_reward_filters_compare_the_raw_reward_not_the_kl_penalised_one(tmp_path: Path) -> None:
    """min_reward / min_reward_margin are in the reward model's units, as documented; the penalty only
    ranks. Rewards (1.0, 0.6), penalised scores (0.0, 0.55) at kl_coef 0.5."""
    # The best raw reward 1.0 passes 0.9 (the best penalised score, 0.55, would not); the plain answer wins.
    _, reporter, selected = run_once(tmp_path / "a", kl_coef=0.5, min_reward=0.9)
    assert {pair.response for pair in load_pairs(selected)} == {"a plain answer"}
    assert reporter.metrics["filtered_prompts"] == 0
    # Raw margin 1.0 - 0.8 = 0.2 < 0.25 filters every prompt (the penalised 0.55 - 0.275 would pass).
    with pytest.raises(RuntimeError, match="4 prompts filtered"):
        run_once(tmp_path / "b", kl_coef=0.5, min_reward_margin=0.25)

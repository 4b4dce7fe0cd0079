"""What the samples browser shows: an iteration's prompts with their K samples, rewards, the kept one and
the degenerate ones, and the held-out prompts' responses across iterations.

Read from the files the loop wrote (``samples.json``, ``scores.json``, ``gold_scores.json``,
``sample_kl.json``, ``eval_samples.json``), never from memory, so a finished, failed or resumed run
shows exactly what it trained on. The kept samples are recomputed with the loop's own ``select`` on
the same ranking (rewards, minus ``kl_coef`` x the per-sample KL when the run used it): selection is
a pure function of those, so this is what ``selected.json`` holds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from orchestrator.raft_loop import EVAL_SAMPLES, select
from raftflow.atomic import read_json
from raftflow.schemas.runs import RunRequest
from raftflow.selection import degenerate_reason
from raftflow.stages import read_samples, read_scores, rewards_of, texts_of


class SampleView(BaseModel):
    text: str
    reward: float | None = Field(description="The training reward (null: the sample could not be scored).")
    gold: float | None = Field(default=None, description="The gold reward, when the run has a gold scorer.")
    kl: float | None = Field(default=None, description="log p - log p0 of the sample, when kl_coef > 0.")
    kept: bool = Field(description="Selected for fine-tuning.")
    degenerate: str | None = Field(description="Why the sample was excluded from ranking, if it was.")
    finish_reason: str
    completion_tokens: int


class PromptSamples(BaseModel):
    index: int = Field(description="The prompt's position in the iteration's batch.")
    prompt: str
    samples: list[SampleView]


class IterationSamples(BaseModel):
    """Body of ``GET /iterations/{run_id}/samples/{iteration}``."""

    iteration: int
    total_prompts: int = Field(description="Prompts of the iteration (before the text filter).")
    matching_prompts: int = Field(description="Prompts whose text contains the filter.")
    offset: int
    prompts: list[PromptSamples]


class EvalResponse(BaseModel):
    iteration: int
    response: str
    reward: float | None
    gold: float | None = None


class EvalPromptHistory(BaseModel):
    prompt: str
    responses: list[EvalResponse] = Field(description="The new policy's response after each iteration.")


class SamplesNotReady(LookupError):
    """The iteration has not been sampled and scored yet (or does not exist)."""


def iteration_samples(
    iteration_dir: Path, index: int, request: RunRequest, query: str, offset: int, limit: int
) -> IterationSamples:
    samples_path, scores_path = iteration_dir / "samples.json", iteration_dir / "scores.json"
    if not (samples_path.exists() and scores_path.exists()):
        raise SamplesNotReady(f"iteration {index} has no scored samples yet")
    samples = read_samples(samples_path)
    texts = texts_of(samples)
    rewards = np.array(rewards_of(read_scores(scores_path, samples)), dtype=float)
    gold = _optional_table(iteration_dir / "gold_scores.json", samples)
    kl = _optional_array(iteration_dir / "sample_kl.json") if request.kl_coef > 0 else None
    ranking = rewards - request.kl_coef * kl if kl is not None else rewards
    kept = set(select(request, ranking, texts, rewards).kept)

    needle = query.casefold()
    matching = [i for i, row in enumerate(samples) if needle in row.prompt.casefold()]
    views = []
    for i in matching[offset : offset + limit]:
        row = samples[i]
        views.append(
            PromptSamples(
                index=i,
                prompt=row.prompt,
                samples=[
                    SampleView(
                        text=sample.text,
                        reward=_finite(rewards[i, j]),
                        gold=_finite(gold[i, j]) if gold is not None else None,
                        kl=_finite(kl[i, j]) if kl is not None else None,
                        kept=(i, j) in kept,
                        degenerate=_why_excluded(sample.text, rewards[i, j]),
                        finish_reason=sample.finish_reason,
                        completion_tokens=sample.completion_tokens,
                    )
                    for j, sample in enumerate(row.samples)
                ],
            )
        )
    return IterationSamples(
        iteration=index,
        total_prompts=len(samples),
        matching_prompts=len(matching),
        offset=offset,
        prompts=views,
    )


def eval_history(iteration_dirs: list[tuple[int, Path]]) -> list[EvalPromptHistory]:
    """Each held-out prompt with the response of every finished iteration's policy, in order."""
    history: dict[str, list[EvalResponse]] = {}
    for index, directory in iteration_dirs:
        path = directory / EVAL_SAMPLES
        if not path.exists():
            continue
        for row in read_json(path):
            history.setdefault(row["prompt"], []).append(
                EvalResponse(
                    iteration=index, response=row["response"], reward=row["reward"], gold=row.get("gold")
                )
            )
    return [EvalPromptHistory(prompt=prompt, responses=responses) for prompt, responses in history.items()]


def _optional_table(path: Path, samples: list) -> np.ndarray | None:
    return np.array(rewards_of(read_scores(path, samples)), dtype=float) if path.exists() else None


def _optional_array(path: Path) -> np.ndarray | None:
    return np.array(read_json(path), dtype=float) if path.exists() else None


def _why_excluded(text: str, reward: float) -> str | None:
    """The selection's own reasons: a degenerate text, or no finite reward to rank by."""
    return degenerate_reason(text) or (None if np.isfinite(reward) else "no reward")


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None

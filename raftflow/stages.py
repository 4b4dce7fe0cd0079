"""RAFT's sample and score stages, and the files between them, written once for two callers.

The orchestrator's loop (``orchestrator/raft_loop.py``) runs them against the services for every
iteration; the ``raftflow sample`` / ``score`` / ``select`` commands run them on files, against a
service URL or a model in the same process, the way LMFlow-RAFT ran inference, reward ranking and
fine-tuning as separate scripts. Same code, same files: a stage of a run can be redone by hand.

Progress is reported through a callback before each chunk; a callback may raise to stop the stage
(the orchestrator's raises when a run is cancelled).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Protocol

from pydantic import TypeAdapter

from raftflow.atomic import read_json, write_json_atomic
from raftflow.chunks import map_chunks
from raftflow.schemas.generation import Sample, SamplingParams
from raftflow.schemas.stages import SampledPrompt, ScoredPrompt
from raftflow.seeds import chunk_seed


class Sampler(Protocol):
    async def sample(self, prompts: list[str], n: int, params: SamplingParams) -> list[list[Sample]]: ...


class Scorer(Protocol):
    async def score(self, prompts: list[str], responses: list[str]) -> list[float]: ...


Progress = Callable[[int, int], None]  # (done, total) in samples
SampleChunk = Callable[[list[str], SamplingParams], Awaitable[list[list[Sample]]]]


async def sample_prompts(
    prompts: Sequence[str],
    k: int,
    params: SamplingParams,
    sample_chunk: SampleChunk,
    *,
    iteration: int = 0,
    chunk_prompts: int = 16,
    concurrency: int = 1,
    progress: Progress | None = None,
    on_chunk: Callable[[int, list[SampledPrompt]], object] | None = None,
) -> list[SampledPrompt]:
    """K samples per prompt, ``chunk_prompts`` prompts per call, each chunk seeded by
    :func:`chunk_seed` from ``params.seed`` (None: unseeded). ``sample_chunk(prompts, params)`` makes
    one call (the orchestrator wraps it to check the generator still serves the run's policy).
    ``concurrency`` calls run at once (the orchestrator: each generator replica's requests in flight,
    ``raftflow.chunks``); the seeds depend on the chunk, not on the order calls finish in, so the
    samples are the same at any concurrency."""
    total = len(prompts) * k

    async def one(start: int) -> list[SampledPrompt]:
        seed = None if params.seed is None else chunk_seed(params.seed, iteration, start)
        chunk = list(prompts[start : start + chunk_prompts])
        got = await sample_chunk(chunk, params.model_copy(update={"seed": seed}))
        if len(got) != len(chunk) or any(len(row) != k for row in got):
            raise RuntimeError(f"the sampler returned {[len(r) for r in got]} samples for {len(chunk)} x {k}")
        rows = [SampledPrompt(prompt=p, samples=row) for p, row in zip(chunk, got, strict=True)]
        if on_chunk is not None:
            on_chunk(start, rows)  # e.g. the orchestrator starts scoring them while sampling goes on
        return rows

    report = None if progress is None else (lambda done: progress(done * k, total))
    chunks = await map_chunks(len(prompts), chunk_prompts, one, concurrency, report)
    if progress:
        progress(total, total)
    return [row for chunk in chunks for row in chunk]


async def score_samples(
    rows: Sequence[SampledPrompt],
    score: Callable[[list[str], list[str]], Awaitable[list[float]]],
    *,
    chunk_items: int = 256,
    concurrency: int = 1,
    progress: Progress | None = None,
) -> list[ScoredPrompt]:
    """Every (prompt, response) scored, ``chunk_items`` pairs per call, ``concurrency`` calls at once."""
    flat_prompts = [row.prompt for row in rows for _ in row.samples]
    flat_texts = [s.text for row in rows for s in row.samples]

    async def one(start: int) -> list[float]:
        end = start + chunk_items
        asked = flat_texts[start:end]
        got = await score(flat_prompts[start:end], asked)
        if len(got) != len(asked):
            raise RuntimeError(f"the scorer returned {len(got)} rewards for {len(asked)} pairs")
        return [float(x) for x in got]

    report = None if progress is None else (lambda done: progress(done, len(flat_texts)))
    chunks = await map_chunks(len(flat_texts), chunk_items, one, concurrency, report)
    scores = [x for chunk in chunks for x in chunk]
    if progress:
        progress(len(flat_texts), len(flat_texts))
    out: list[ScoredPrompt] = []
    offset = 0
    for row in rows:
        n = len(row.samples)
        out.append(ScoredPrompt(prompt=row.prompt, samples=row.samples, rewards=scores[offset : offset + n]))
        offset += n
    return out


def texts_of(rows: Sequence[SampledPrompt]) -> list[list[str]]:
    return [[s.text for s in row.samples] for row in rows]


def rewards_of(rows: Sequence[ScoredPrompt]) -> list[list[float]]:
    return [list(row.rewards) for row in rows]


# -- files ------------------------------------------------------------------------------------------

_SAMPLED = TypeAdapter(list[SampledPrompt])
_SCORED = TypeAdapter(list[ScoredPrompt])


def write_samples(path: str | Path, rows: Sequence[SampledPrompt]) -> None:
    write_json_atomic(path, [row.model_dump(mode="json") for row in rows])


def read_samples(path: str | Path, prompts: Sequence[str] | None = None) -> list[SampledPrompt]:
    """``samples.json`` records. Runs written before the records carried their prompt stored a bare
    P x K table of samples; those are read with ``prompts`` (the iteration's batch) so such a run
    resumes."""
    data = read_json(path)
    if data and isinstance(data[0], list):
        if prompts is None:
            raise ValueError(f"{path}: an old samples table without prompts; pass the prompts")
        data = [{"prompt": p, "samples": row} for p, row in zip(prompts, data, strict=True)]
    return _SAMPLED.validate_python(data)


def write_scores(path: str | Path, rows: Sequence[ScoredPrompt]) -> None:
    write_json_atomic(path, [row.model_dump(mode="json") for row in rows])


def read_scores(path: str | Path, sampled: Sequence[SampledPrompt] | None = None) -> list[ScoredPrompt]:
    """``scores.json`` records; an older run's bare P x K reward table is joined to ``sampled``."""
    data = read_json(path)
    if data and isinstance(data[0], list):
        if sampled is None:
            raise ValueError(f"{path}: an old reward table without samples; pass the samples")
        data = [
            {**row.model_dump(mode="json"), "rewards": rewards}
            for row, rewards in zip(sampled, data, strict=True)
        ]
    return _SCORED.validate_python(data)

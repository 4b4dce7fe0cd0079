"""One RAFT alignment run, top to bottom.

    for each iteration:
        1. take the next prompts_per_iteration prompts (shuffled once by seed, wrapping around)
        2. sample K responses per prompt from the current policy            -> samples.json
        3. score every (prompt, response) with the reward model              -> scores.json
        4. keep the best (local top-1 per prompt, or global top fraction),
           dropping degenerate samples                                       -> selected.json
        5. fine-tune the current policy on the kept pairs (a trainer job)    -> checkpoints/<job_id>/
        6. load the new checkpoint into the generator
        7. record metrics (with eval prompts: held-out reward and KL to the initial policy);
           the next iteration samples from the new policy

Every stage writes its output atomically into ``ARTIFACTS_DIR/runs/<run_id>/iter-NNN/`` and is
skipped when that output already exists, so an orchestrator killed at any point and started again
continues from the last completed stage. Training is idempotent on the trainer's side (the job id
names the checkpoint), so a restart during training waits for, or reuses, the same job instead of
training twice. The iteration and the run's new policy are recorded in one DB transaction.

A cancel (or the orchestrator's shutdown) ends the stages that call the generator and the rewarder at
once (:meth:`RunContext.interruptible`): their requests in flight are cancelled, which closes their
connections, and the services drop the work (the generator stops generating). Before, the loop only
looked at the cancel between chunks, so it waited for the chunks in flight to finish, minutes of
generation nobody would use, while the next run queued behind them. Training has its own path: the
trainer client's wait loop checks the cancel and revokes the job.

The services are reached through four small protocols (:class:`Backends`), so the same loop runs
against the HTTP services in production and in one process in ``bench/iteration.py``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Literal, Protocol, TypeVar

import numpy as np

from raftflow.atomic import read_json, write_json_atomic
from raftflow.data import PromptResponse, load_pairs, load_prompts, write_text2text
from raftflow.iteration_stats import kl_estimate, reward_table_metrics, text_metrics
from raftflow.schemas.generation import Sample, SamplingParams
from raftflow.schemas.jobs import JobProgress, JobResult, SFTJob
from raftflow.schemas.runs import RunRequest, StageProgress
from raftflow.schemas.stages import SampledPrompt, ScoredPrompt
from raftflow.seeds import eval_seed, sft_mix_seed, training_seed
from raftflow.selection import Selection
from raftflow.selection import select as select_samples
from raftflow.stages import (
    Sampler,
    Scorer,
    read_samples,
    read_scores,
    rewards_of,
    sample_prompts,
    score_samples,
    texts_of,
    write_samples,
    write_scores,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
# Calls redone when the generator turns out to have lost the run's checkpoint mid-call.
_POLICY_ATTEMPTS = 3
# trainer: external: the file POST /iterations/{id}/checkpoint writes into the iteration's directory.
POSTED_CHECKPOINT = "posted_checkpoint.json"
EVAL_SAMPLES = "eval_samples.json"  # the held-out prompts' responses after the iteration
_POSTED_POLL_S = 0.5
# How often an interruptible stage looks at the cancel and shutdown events (set from other threads).
_CANCEL_POLL_S = 0.1
__all__ = ["Backends", "RunContext", "Sampler", "Scorer", "execute_run", "run_iteration"]


class PolicyTrainer(Protocol):
    async def train(self, job: SFTJob, on_progress: Callable[[JobProgress], None]) -> JobResult: ...


class PolicyServer(Protocol):
    async def ensure_loaded(self, checkpoint: str) -> None: ...


class CheckablePolicyServer(PolicyServer, Protocol):
    """A policy server that can say whether it still serves a checkpoint (raftflow's generator).

    Detected with hasattr, not required. A generator that restarts mid-stage comes back serving its
    start-up model, and the client's retry then succeeds against the wrong policy; with this check the
    loop notices after each call, loads the checkpoint again and redoes the call (same seeds, same
    samples)."""

    async def serves(self, checkpoint: str) -> bool: ...


class SleepingPolicyServer(PolicyServer, Protocol):
    """A policy server that can hand its accelerator memory to the trainer (vLLM's sleep mode behind
    raftflow's generator). Used when the run asks for it (``sleep_generator_while_training``)."""

    async def sleep(self) -> None: ...

    async def wake_up(self) -> None: ...


class ScoringPolicyServer(PolicyServer, Protocol):
    """A policy server that also scores given responses (raftflow's generator, not TGI): the eval
    stage then reports KL to the initial policy. Detected with hasattr, not required."""

    async def ensure_reference(self, checkpoint: str) -> None: ...

    async def sample_logprobs(
        self, prompts: list[str], samples: list[Sample], model: Literal["current", "reference"] = "current"
    ) -> list[float]:
        """log p(sample | prompt) per sample: of its sampled token ids (EOS included) when it carries
        them, else of its text."""
        ...

    async def perplexity(self, prompts: list[str], responses: list[str]) -> float: ...


@dataclass
class Backends:
    sampler: Sampler
    scorer: Scorer
    trainer: PolicyTrainer
    policy_server: PolicyServer
    # Optional second reward, reported beside the one RAFT optimises and never used for ranking:
    # a gold reward next to a learned proxy makes reward hacking visible (proxy up, gold flat).
    gold_scorer: Scorer | None = None
    # Calls in flight at once (a stage chunk is one request). Sampling: the generator client's requests
    # in flight (raftflow.chunks) per replica, so no generator idles between chunks; its samples depend
    # on the seed only. Scoring: ONE per rewarder replica, across all overlapped chunks, because the
    # rewarder coalesces concurrent requests into batches and a different batch changes a reward in its
    # last float bits: one request at a time keeps a run's scores bit-identical from run to run. (A score
    # stage redone after a crash sends all samples at once instead of chunk by chunk, so its batches,
    # and the last bits, can differ: tests/reliability compares rewards to 1e-6.)
    sample_concurrency: int = 1
    score_concurrency: int = 1


class RunCancelled(Exception):
    """Raised at the next check in the loop after a user's cancel request: the run ends cancelled."""


class RunInterrupted(Exception):
    """Raised at the next check when the orchestrator shuts down: the run stays ``running`` in the
    store and resumes from its last completed stage when the orchestrator starts again."""


class Reporter(Protocol):
    """Where the loop reports progress and results (the run store in production)."""

    def stage(self, iteration: int, progress: StageProgress) -> None: ...

    def iteration_started(self, iteration: int) -> None: ...

    def iteration_finished(self, iteration: int, checkpoint: str, metrics: dict[str, float]) -> None: ...

    def awaiting_checkpoint(self, iteration: int, selected_data: str | None) -> None:
        """``trainer: external``: the run waits for a checkpoint trained on ``selected_data`` (None: it
        has one and goes on)."""
        ...


@dataclass
class RunContext:
    run_id: str
    request: RunRequest
    run_dir: Path
    reporter: Reporter
    cancel: threading.Event = field(default_factory=threading.Event)
    shutdown: threading.Event = field(default_factory=threading.Event)
    sample_chunk_prompts: int = 16
    score_chunk_items: int = 256
    overlap_scoring: bool = True

    def check_cancelled(self) -> None:
        if self.cancel.is_set():
            raise RunCancelled(self.run_id)
        if self.shutdown.is_set():
            raise RunInterrupted(self.run_id)

    async def interruptible(self, work: Awaitable[T]) -> T:
        """``await work``, unless the run is cancelled or the orchestrator shuts down first: then the
        work is cancelled (its HTTP requests in flight are closed, so the services drop them) and
        :class:`RunCancelled` / :class:`RunInterrupted` is raised once it has unwound.

        The events are set from other threads (the API's cancel route, the shutdown), so they are
        polled every ``_CANCEL_POLL_S``: a cancel takes effect within that, not after the chunks in
        flight finish."""
        task = asyncio.ensure_future(work)
        try:
            while not task.done():
                await asyncio.wait((task,), timeout=_CANCEL_POLL_S)
                if not task.done() and (self.cancel.is_set() or self.shutdown.is_set()):
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                    self.check_cancelled()
        finally:
            if not task.done():  # this coroutine was cancelled itself: the work goes with it
                task.cancel()
        return task.result()

    def iteration_dir(self, index: int) -> Path:
        return self.run_dir / f"iter-{index:03d}"

    def job_id(self, index: int) -> str:
        return f"{self.run_id}-iter{index:03d}"


async def execute_run(ctx: RunContext, backends: Backends, start_iteration: int, policy: str) -> str:
    """Run iterations ``start_iteration .. num_iterations-1``; returns the final checkpoint."""
    request = ctx.request
    prompts = shuffled(load_prompts(request.prompts), request.seed)
    eval_prompts = (
        load_prompts(request.eval_prompts)[: request.max_eval_prompts] if request.eval_prompts else []
    )
    for index in range(start_iteration, request.num_iterations):
        ctx.check_cancelled()
        policy = await run_iteration(ctx, backends, index, policy, prompts, eval_prompts)
    return policy


async def run_iteration(
    ctx: RunContext,
    backends: Backends,
    index: int,
    policy: str,
    prompts: list[str],
    eval_prompts: list[str],
) -> str:
    request, out = ctx.request, ctx.iteration_dir(index)
    ctx.reporter.iteration_started(index)
    timings: dict[str, float] = {}

    # 1. The next slice of prompts.
    batch = prompt_slice(prompts, index, request.prompts_per_iteration)

    # 2. Sample K per prompt from the run's current policy (reloaded first: after a restart, or when
    #    another run used the generator in between, it may be serving something else; woken first
    #    when the run sleeps it, as a crash mid-training leaves it asleep).
    with _timed(timings, "sample_s"):
        if request.sleep_generator_while_training:
            await _sleeper(backends).wake_up()
        await backends.policy_server.ensure_loaded(policy)
        path = out / "samples.json"
        overlapped: OverlappedScores | None = None
        if path.exists():
            samples = read_samples(path, batch)
        else:
            if ctx.overlap_scoring and not (out / "scores.json").exists():
                overlapped = OverlappedScores(ctx, backends)
            try:
                samples = await ctx.interruptible(
                    sample_stage(
                        ctx, backends, index, batch, policy, on_chunk=overlapped.add if overlapped else None
                    )
                )
            except BaseException:
                if overlapped is not None:
                    await overlapped.cancel()
                raise
            write_samples(path, samples)
    texts = texts_of(samples)

    # 3. Score every (prompt, response): with overlap, most of it already ran while sampling went on,
    #    and score_s is only what is left to wait for.
    with _timed(timings, "score_s"):
        scored = await ctx.interruptible(
            _scored(
                ctx,
                backends.scorer,
                index,
                samples,
                out / "scores.json",
                concurrency=backends.score_concurrency,
                overlapped=overlapped,
            )
        )
        rewards = np.array(rewards_of(scored))
        gold = None
        if backends.gold_scorer is not None:
            gold = np.array(
                rewards_of(
                    await ctx.interruptible(
                        _scored(
                            ctx, backends.gold_scorer, index, samples, out / "gold_scores.json", "gold_score"
                        )
                    )
                )
            )

    # 3b. With kl_coef, rank by the paper's KL-penalised reward r - beta * (log p - log p0): samples the
    #     policy already likes far more than the initial policy did are held back (diversity lever).
    ranking, sample_kl = rewards, None
    if request.kl_coef > 0:
        with _timed(timings, "score_s"):
            sample_kl = np.array(
                await _cached(
                    out / "sample_kl.json",
                    lambda: ctx.interruptible(sample_kl_stage(ctx, backends, samples, policy)),
                )
            )
        ranking = rewards - request.kl_coef * sample_kl

    # 4. Select the best and write them as the training set (plus a share of SFT pairs, when asked).
    ctx.check_cancelled()
    ctx.reporter.stage(index, StageProgress(stage="select", done=0, total=1))
    selection = select(request, ranking, texts, rewards)
    data_path = out / "selected.json"
    if not selection.kept:
        raise RuntimeError(
            f"iteration {index}: nothing to train on ({selection.discarded_samples} degenerate samples, "
            f"{selection.filtered_prompts} prompts filtered by min_reward / min_reward_margin)"
        )
    if not data_path.exists():
        kept = [(batch[i], texts[i][j]) for i, j in selection.kept]
        write_text2text(data_path, kept + sft_mix(request, index, len(kept)))

    # 5. Fine-tune the current policy on them (the generator asleep meanwhile, when asked: a trainer
    #    on the same GPU then gets vLLM's memory; it wakes even when training fails).
    with _timed(timings, "train_s"):
        async with _generator_asleep(backends, request.sleep_generator_while_training):
            result = await train_stage(ctx, backends.trainer, index, policy, data_path)

    # 6. Serve the new policy.
    with _timed(timings, "load_s"):
        ctx.reporter.stage(index, StageProgress(stage="load", done=0, total=1))
        await backends.policy_server.ensure_loaded(result.checkpoint)

    # 7. Metrics (plus the held-out reward, KL and perplexity of the NEW policy when eval data is given).
    metrics = iteration_metrics(samples, rewards, gold, selection, result)
    if sample_kl is not None:
        metrics["sample_kl"] = float(sample_kl.mean())
        metrics["selected_kl"] = float(np.mean([sample_kl[i, j] for i, j in selection.kept]))
    if eval_prompts or request.eval_pairs:
        with _timed(timings, "eval_s"):
            metrics.update(
                await ctx.interruptible(
                    on_policy(
                        backends.policy_server,
                        result.checkpoint,
                        lambda: eval_stage(ctx, backends, index, eval_prompts),
                    )
                )
            )
    metrics.update(timings)
    write_json_atomic(out / "metrics.json", metrics)
    ctx.reporter.iteration_finished(index, result.checkpoint, metrics)
    return result.checkpoint


class OverlappedScores:
    """Scoring that starts on each sample chunk as it arrives, while the next chunks are sampled
    (``ORCHESTRATOR_OVERLAP_SCORING``): generation and reward-model forwards then run side by side on
    their own devices or cores. The chunks share ``score_concurrency`` requests in flight (see
    :class:`Backends`), so the rewards equal scoring everything after, to the last bit."""

    def __init__(self, ctx: RunContext, backends: Backends) -> None:
        self._ctx, self._backends = ctx, backends
        self._tasks: dict[int, asyncio.Task[list[ScoredPrompt]]] = {}
        self._gate = asyncio.Semaphore(max(1, backends.score_concurrency))

    async def _score(self, prompts: list[str], responses: list[str]) -> list[float]:
        async with self._gate:
            return await self._backends.scorer.score(prompts, responses)

    def add(self, start: int, rows: list[SampledPrompt]) -> None:
        self._tasks[start] = asyncio.ensure_future(
            score_samples(
                rows,
                self._score,
                chunk_items=self._ctx.score_chunk_items,
                concurrency=self._backends.score_concurrency,
            )
        )

    async def result(self) -> list[ScoredPrompt]:
        try:
            return [row for start in sorted(self._tasks) for row in await self._tasks[start]]
        except BaseException:
            await self.cancel()
            raise

    async def cancel(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)


async def sample_stage(
    ctx: RunContext,
    backends: Backends,
    index: int,
    batch: list[str],
    policy: str,
    on_chunk: Callable[[int, list[SampledPrompt]], object] | None = None,
) -> list[SampledPrompt]:
    request = ctx.request

    def progress(done: int, total: int) -> None:
        ctx.check_cancelled()
        ctx.reporter.stage(index, StageProgress(stage="sample", done=done, total=total, unit="samples"))

    async def sample_chunk(prompts: list[str], params: SamplingParams):
        k = request.samples_per_prompt
        return await on_policy(
            backends.policy_server, policy, partial(backends.sampler.sample, prompts, k, params)
        )

    return await sample_prompts(
        batch,
        request.samples_per_prompt,
        request.sampling_params(request.seed),
        sample_chunk,
        iteration=index,
        chunk_prompts=ctx.sample_chunk_prompts,
        concurrency=backends.sample_concurrency,
        progress=progress,
        on_chunk=on_chunk,
    )


async def on_policy(server: PolicyServer, checkpoint: str, call: Callable[[], Awaitable[T]]) -> T:
    """``await call()``, a call to the generator made while it serves ``checkpoint`` (loaded before);
    if afterwards it no longer serves it (it restarted on its start-up model while the client retried),
    load it again and redo the call, so no sample or log-probability comes from the wrong policy."""
    for _ in range(_POLICY_ATTEMPTS):
        value = await call()
        if not hasattr(server, "serves") or await server.serves(checkpoint):
            return value
        log.warning("the generator stopped serving %s during a call (restarted?); reloading it", checkpoint)
        await server.ensure_loaded(checkpoint)
    raise RuntimeError(
        f"the generator stopped serving {checkpoint} during each of {_POLICY_ATTEMPTS} attempts "
        "(restarting in a loop?)"
    )


async def _scored(
    ctx: RunContext,
    scorer: Scorer,
    index: int,
    samples: list[SampledPrompt],
    path: Path,
    stage: Literal["score", "gold_score"] = "score",
    concurrency: int = 1,
    overlapped: OverlappedScores | None = None,
) -> list[ScoredPrompt]:
    """The stage's scores from ``path`` (a resumed run), else those scored while sampling (overlap),
    else scored now; stored there."""
    if path.exists():
        return read_scores(path, samples)
    if overlapped is not None:
        # Sampling is over; what is left is waiting for the chunks still being scored.
        ctx.reporter.stage(index, StageProgress(stage=stage, done=0, total=len(samples), unit="prompts"))
        scored = await overlapped.result()
        if [row.prompt for row in scored] != [row.prompt for row in samples]:
            raise RuntimeError("overlapped scoring lost track of the sample chunks")  # a bug, not input
        ctx.reporter.stage(
            index, StageProgress(stage=stage, done=len(scored), total=len(scored), unit="prompts")
        )
        write_scores(path, scored)
        return scored

    def progress(done: int, total: int) -> None:
        ctx.check_cancelled()
        ctx.reporter.stage(index, StageProgress(stage=stage, done=done, total=total, unit="samples"))

    scored = await score_samples(
        samples,
        scorer.score,
        chunk_items=ctx.score_chunk_items,
        concurrency=concurrency,
        progress=progress,
    )
    write_scores(path, scored)
    return scored


async def sample_kl_stage(
    ctx: RunContext, backends: Backends, samples: list[SampledPrompt], policy: str
) -> list[list[float]]:
    """log p(sample) - log p0(sample) per sample: the current policy (which sampled them) against the
    run's initial policy, both scored by the generator (``/v1/logprobs``) on the token ids the policy
    sampled, the EOS that ended a sample included (its stop decision is part of what it chose). While
    the current policy is the initial one (the first iteration), that is 0 by definition: no forward
    pass is spent on it (two passes over every sample, about a third of an HH iteration's time on a
    CPU)."""
    server = backends.policy_server
    if not (hasattr(server, "ensure_reference") and hasattr(server, "sample_logprobs")):
        raise RuntimeError("kl_coef needs a generator that scores log-probabilities (raftflow's generator)")
    if policy == ctx.request.policy:
        return [[0.0] * len(row.samples) for row in samples]
    flat_prompts = [row.prompt for row in samples for _ in row.samples]
    flat = [sample for row in samples for sample in row.samples]
    await server.ensure_reference(ctx.request.policy)
    current = await on_policy(server, policy, partial(server.sample_logprobs, flat_prompts, flat, "current"))
    reference = await server.sample_logprobs(flat_prompts, flat, "reference")
    kl = np.array(current) - np.array(reference)
    k = len(samples[0].samples) if samples else 0
    return [kl[i * k : (i + 1) * k].tolist() for i in range(len(samples))]


def sft_mix(request: RunRequest, index: int, kept: int) -> list[PromptResponse]:
    """SFT pairs mixed into an iteration's fine-tuning set, so they make ``sft_mix_ratio`` of it
    (another diversity lever: the policy keeps seeing reference answers); drawn by seed, without
    replacement within an iteration."""
    if not request.sft_mix_data or request.sft_mix_ratio <= 0:
        return []
    pairs = load_pairs(request.sft_mix_data)
    count = min(len(pairs), round(kept * request.sft_mix_ratio / (1 - request.sft_mix_ratio)))
    return random.Random(sft_mix_seed(request.seed, index)).sample(pairs, count)


def select(
    request: RunRequest, ranking: np.ndarray, texts: list[list[str]], rewards: np.ndarray
) -> Selection:
    """Rank by ``ranking`` (the KL-penalised reward with ``kl_coef``); ``min_reward`` and
    ``min_reward_margin`` compare the raw ``rewards``, in the reward model's units, as documented."""
    return select_samples(
        ranking,
        texts,
        request.selection,
        request.global_fraction,
        min_reward=request.min_reward,
        min_margin=request.min_reward_margin,
        filter_rewards=rewards,
    )


def _sleeper(backends: Backends) -> SleepingPolicyServer:
    server = backends.policy_server
    if not hasattr(server, "sleep"):
        raise RuntimeError("sleep_generator_while_training: this run's generator cannot sleep")
    return server  # type: ignore[return-value]


@asynccontextmanager
async def _generator_asleep(backends: Backends, asleep: bool) -> AsyncIterator[None]:
    if not asleep:
        yield
        return
    sleeper = _sleeper(backends)
    await sleeper.sleep()
    try:
        yield
    finally:
        await sleeper.wake_up()


async def train_stage(
    ctx: RunContext, trainer: PolicyTrainer, index: int, policy: str, data_path: Path
) -> JobResult:
    if ctx.request.trainer == "external":
        return await external_train_stage(ctx, index, data_path)
    training = ctx.request.training.model_copy(
        # The run's trackers get its jobs' training curves too, unless the training config names its own.
        update={
            "seed": training_seed(ctx.request.seed, index),
            "report_to": ctx.request.training.report_to or ctx.request.report_to or [],
        }
    )
    job = SFTJob(
        job_id=ctx.job_id(index),
        model=policy,
        data=str(data_path),
        output_dir=str(ctx.run_dir / "checkpoints"),
        training=training,
        prompt_format=ctx.request.prompt_format,
    )

    last_seen: list[JobProgress] = []

    def on_progress(progress: JobProgress) -> None:
        ctx.check_cancelled()  # raised inside the trainer client's wait loop: stops waiting
        # The client polls often (a coarse poll idles the whole loop); the store is written only when
        # the worker reported something new.
        if last_seen and last_seen[0] == progress:
            return
        last_seen[:] = [progress]
        ctx.reporter.stage(
            index,
            StageProgress(
                stage="train",
                done=progress.step,
                total=progress.total_steps,
                unit="steps",
                detail={"loss": progress.loss, "eta_seconds": progress.eta_seconds, "state": progress.state},
            ),
        )

    ctx.reporter.stage(index, StageProgress(stage="train", done=0, total=0, unit="steps"))
    return await trainer.train(job, on_progress)


async def external_train_stage(ctx: RunContext, index: int, data_path: Path) -> JobResult:
    """Wait until the user posts a checkpoint fine-tuned on ``data_path`` (the route validates it and
    writes ``posted_checkpoint.json`` into the iteration's directory). The wait is only that file: it
    survives an orchestrator restart, and a cancel ends it at the next poll."""
    posted = ctx.iteration_dir(index) / POSTED_CHECKPOINT
    if not posted.exists():
        ctx.reporter.awaiting_checkpoint(index, str(data_path))
        log.info("run %s iteration %d: waiting for a checkpoint trained on %s", ctx.run_id, index, data_path)
        while not posted.exists():
            ctx.check_cancelled()
            await asyncio.sleep(_POSTED_POLL_S)
    checkpoint = str(read_json(posted)["path"])
    ctx.reporter.awaiting_checkpoint(index, None)
    return JobResult(job_id=ctx.job_id(index), kind="sft", checkpoint=checkpoint, metrics={})


async def eval_stage(ctx: RunContext, backends: Backends, index: int, eval_prompts: list[str]) -> dict:
    """One sample per held-out prompt from the new policy, scored by the training reward (and gold),
    and, when the policy server can score responses, the KL of the new policy to the initial one and
    its perplexity of the held-out pairs.

    Every iteration evaluates with the same seeds and the full ``max_new_tokens`` (no per-request
    length draw), so two iterations' numbers differ by the weights alone. The reward is of samples at
    the run's decoding (what RAFT ranks); the KL is of samples at temperature 1 without top-p/top-k,
    the policy's own distribution: the mean of log p - log p0 over tempered samples is not
    KL(p || p0)."""
    metrics: dict[str, float] = {}
    server = backends.policy_server
    if ctx.request.eval_pairs and hasattr(server, "perplexity"):
        pairs = load_pairs(ctx.request.eval_pairs)[: ctx.request.max_eval_pairs]
        ctx.reporter.stage(index, StageProgress(stage="eval", done=0, total=len(pairs), unit="pairs"))
        metrics["eval_ppl"] = await server.perplexity([p.prompt for p in pairs], [p.response for p in pairs])
    if not eval_prompts:
        return metrics
    ctx.reporter.stage(index, StageProgress(stage="eval", done=0, total=len(eval_prompts), unit="samples"))
    params = eval_sampling(ctx.request)
    got = await backends.sampler.sample(eval_prompts, 1, params)
    responses = [row[0].text for row in got]
    rewards = list(await backends.scorer.score(eval_prompts, responses))
    metrics["eval_reward"] = float(np.mean(rewards))
    gold: list[float | None] = [None] * len(responses)
    if backends.gold_scorer is not None:
        gold = list(await backends.gold_scorer.score(eval_prompts, responses))
        metrics["gold_eval_reward"] = float(np.mean(gold))
    # Kept for the dashboard, which compares the same held-out prompt across iterations.
    write_json_atomic(
        ctx.iteration_dir(index) / EVAL_SAMPLES,
        [
            {"prompt": p, "response": r, "reward": _json_float(w), "gold": _json_float(g)}
            for p, r, w, g in zip(eval_prompts, responses, rewards, gold, strict=True)
        ],
    )
    if hasattr(server, "ensure_reference") and hasattr(server, "sample_logprobs"):
        kl_params = kl_sampling(params, ctx.request.seed)
        if kl_params is None:  # the run already samples at temperature 1, untruncated
            kl_samples = [row[0] for row in got]
        else:
            kl_samples = [row[0] for row in await backends.sampler.sample(eval_prompts, 1, kl_params)]
        metrics["kl_to_initial"] = await kl_to_initial(server, ctx.request.policy, eval_prompts, kl_samples)
    return metrics


def eval_sampling(request: RunRequest) -> SamplingParams:
    """The held-out samples' decoding: the run's, with one seed for the whole run and the full length
    budget (``min_new_tokens`` would draw another budget per request and iteration)."""
    return request.sampling_params(eval_seed(request.seed)).model_copy(update={"min_tokens": None})


def kl_sampling(params: SamplingParams, seed: int) -> SamplingParams | None:
    """``params`` at temperature 1 without top-p / top-k (the policy's own distribution, which a
    Monte-Carlo KL needs), seeded for the run; None when ``params`` already sample it."""
    if params.temperature == 1.0 and params.top_p == 1.0 and params.top_k <= 0:
        return None
    return params.model_copy(
        update={"temperature": 1.0, "top_p": 1.0, "top_k": 0, "seed": eval_seed(seed, "kl")}
    )


def _json_float(value: float | None) -> float | None:
    return float(value) if value is not None and np.isfinite(value) else None


async def kl_to_initial(
    server: ScoringPolicyServer, initial: str, prompts: list[str], samples: list[Sample]
) -> float:
    """Monte-Carlo KL(current || initial) over responses sampled from the current policy at
    temperature 1, scored on their sampled token ids: how far RAFT has moved the policy, the drift
    that reward alone hides (reward up at a large KL is often hacking)."""
    await server.ensure_reference(initial)
    current = await server.sample_logprobs(prompts, samples, "current")
    reference = await server.sample_logprobs(prompts, samples, "reference")
    return kl_estimate(current, reference)


def iteration_metrics(
    samples: list[SampledPrompt],
    rewards: np.ndarray,
    gold: np.ndarray | None,
    selection: Selection,
    result: JobResult,
) -> dict[str, float]:
    texts = texts_of(samples)
    lengths = [[s.completion_tokens for s in row.samples] for row in samples]
    total = rewards.size
    kept = selection.kept
    metrics: dict[str, float] = {
        **reward_table_metrics(rewards),
        **text_metrics(texts, lengths),
        "selected_reward": float(np.mean([rewards[i, j] for i, j in kept])) if kept else float("nan"),
        "selected_count": float(len(kept)),
        "discard_rate": selection.discarded_samples / total if total else 0.0,
        "dropped_prompts": float(selection.dropped_prompts),
        "filtered_prompts": float(selection.filtered_prompts),
    }
    if gold is not None:
        metrics.update({f"gold_{k}": v for k, v in reward_table_metrics(gold).items()})
        metrics["gold_selected_reward"] = (
            float(np.mean([gold[i, j] for i, j in kept])) if kept else float("nan")
        )
    metrics.update({f"train_{k}": float(v) for k, v in result.metrics.items()})
    return metrics


def shuffled(prompts: list[str], seed: int) -> list[str]:
    """Shuffled once per run by seed; iterations then walk through it without replacement."""
    if not prompts:
        raise ValueError("the prompt dataset is empty")
    order = list(prompts)
    random.Random(seed).shuffle(order)
    return order


def prompt_slice(prompts: list[str], index: int, size: int) -> list[str]:
    """The ``index``-th block of ``size`` prompts, wrapping around when the dataset runs out."""
    start = index * size
    return [prompts[(start + offset) % len(prompts)] for offset in range(size)]


async def _cached(path: Path, produce: Callable) -> list:
    """Return the stage output stored at ``path``, or produce and store it (atomically)."""
    if path.exists():
        return read_json(path)
    value = await produce()
    write_json_atomic(path, value)
    return value


class _timed:
    """Adds the block's wall time to ``timings[key]`` (a stage skipped on resume counts ~0)."""

    def __init__(self, timings: dict[str, float], key: str) -> None:
        self.timings, self.key = timings, key

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.timings[self.key] = self.timings.get(self.key, 0.0) + time.perf_counter() - self.start

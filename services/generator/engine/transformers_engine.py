"""In-process sampling with transformers: one generation thread, batched calls, atomic hot reload.

Concurrency model:
- Everything that touches the model or tokenizer runs on ONE worker thread (a single-thread executor),
  in submission order. Two ``generate`` calls never overlap, the global torch RNG seeded before each
  call is not disturbed mid-call, and the event loop stays free to accept requests and serve /health.
- Requests submit their batches one by one, so a long request and short ones interleave at batch
  boundaries instead of the short ones waiting for the whole long request.
- A request captures the current :class:`LoadedModel` once, at its start, and uses it for every batch.
  ``load()`` builds the new model as one more job on the same worker (between two batches: loading may
  draw from the global torch RNG, e.g. to initialise missing weights, which would change a running
  seeded request's samples), then swaps the reference in one assignment: requests already running
  finish on the old weights, later ones see the new. The old model is freed when its last request ends.
- An optional reference model (the initial policy, for KL estimates) lives beside the served one,
  loaded and swapped the same way; ``/v1/logprobs`` scores with either, as jobs on the same worker.
- A cancelled request (its client disconnected: the routes cancel the task awaiting it) stops at once:
  it submits no more batches, its job still queued on the worker is dropped (cancelling the future
  ``run_in_executor`` returned cancels the pending job), and its running ``generate`` stops at the next
  token (a stopping criterion watching the request's ``threading.Event``). Without that the worker ran
  every batch of every abandoned request before anything queued behind them.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, TypeVar

from raftflow.modeling import resolve_device
from raftflow.schemas.generation import draw_max_tokens
from raftflow.seeds import derive_seed, fresh_seed
from services.generator.engine.batching import plan_batches
from services.generator.engine.decoding import (
    GenerationCancelled,
    prompt_token_logprobs,
    run_batch,
    score_batch,
)
from services.generator.engine.loaded_model import LoadedModel, load_model
from services.generator.engine.types import (
    BackendRejected,
    ContextLengthExceeded,
    GeneratedSample,
    GenerationJob,
    GenerationOutput,
    LoadFailed,
    LogprobsOutput,
    ModelState,
    NoReferenceModel,
    ScoringJob,
    UnsupportedOperation,
    check_context,
)
from services.generator.settings import GeneratorSettings
from services.generator.telemetry import GeneratorTelemetry

log = logging.getLogger(__name__)
T = TypeVar("T")


class TransformersEngine:
    def __init__(self, settings: GeneratorSettings, telemetry: GeneratorTelemetry) -> None:
        self._settings = settings
        self._telemetry = telemetry
        self._device = resolve_device(settings.device)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="generate")
        self._load_lock = asyncio.Lock()
        self._current: LoadedModel | None = None
        self._reference: LoadedModel | None = None
        self._load_count = 0

    async def start(self) -> None:
        assert self._settings.model is not None  # GeneratorSettings enforces it for this backend
        loaded = await self._on_worker(self._load, self._settings.model)
        self._install(loaded)
        if self._settings.reference_model:
            self._reference = await self._on_worker(self._load, self._settings.reference_model)
            log.info("reference model %s", self._reference.name)

    async def close(self) -> None:
        await asyncio.to_thread(self._worker.shutdown, wait=True)

    async def ready(self) -> bool:
        return self._current is not None

    def state(self) -> ModelState:
        return self._state_of(self._loaded())

    async def load(self, path: str) -> tuple[ModelState, ModelState]:
        async with self._load_lock:  # one load at a time, so `previous` is what this load replaced
            previous = self.state()
            started = time.perf_counter()
            try:
                loaded = await self._on_worker(self._load, path)
            except Exception as exc:  # any failure leaves the old model in place
                self._telemetry.loads.labels(outcome="failed").inc()
                log.warning("load of %s failed: %s", path, exc)
                raise LoadFailed(path, exc) from exc
            self._telemetry.load_seconds.observe(time.perf_counter() - started)
            self._install(loaded)
            return previous, self.state()

    def reference_state(self) -> ModelState | None:
        return None if self._reference is None else self._state_of(self._reference)

    async def load_reference(self, path: str) -> ModelState:
        """Same lock, worker and failure handling as :meth:`load`: a failed load keeps the old one."""
        async with self._load_lock:
            try:
                loaded = await self._on_worker(self._load, path)
            except Exception as exc:
                self._telemetry.loads.labels(outcome="failed").inc()
                log.warning("load of reference %s failed: %s", path, exc)
                raise LoadFailed(path, exc) from exc
            self._reference = loaded  # one assignment: running logprobs requests keep the old one
            log.info("reference model %s", loaded.name)
            return self._state_of(loaded)

    async def sleep(self, level: int = 1) -> None:
        raise UnsupportedOperation(
            "sleep mode is vLLM's: the transformers engine has none (use --backend vllm on a GPU)"
        )

    async def wake_up(self) -> None:
        raise UnsupportedOperation(
            "sleep mode is vLLM's: the transformers engine has none (use --backend vllm on a GPU)"
        )

    async def logprobs(self, job: ScoringJob) -> LogprobsOutput:
        """One forward pass per token-budget batch, on the generation worker (the model and tokenizer
        are not thread-safe, and batches interleave with sampling requests like generate's do)."""
        loaded = self._loaded() if job.model == "current" else self._reference
        if loaded is None:
            raise NoReferenceModel()
        pairs = await self._on_worker(_encode_scoring, loaded, job)
        for index, (prompt_ids, response_ids) in enumerate(pairs):
            if not prompt_ids:
                raise BackendRejected(f"prompt {index} encodes to no tokens: nothing to condition on")
            if any(token >= loaded.vocab_size for token in response_ids):
                raise BackendRejected(
                    f"response_token_ids.{index}: an id outside this model's vocabulary of "
                    f"{loaded.vocab_size} tokens"
                )
            if (
                loaded.context_length is not None
                and len(prompt_ids) + len(response_ids) > loaded.context_length
            ):
                raise ContextLengthExceeded(index, len(prompt_ids), len(response_ids), loaded.context_length)
        plan = plan_batches([len(p) + len(r) for p, r in pairs], 1, 0, self._settings.token_budget)
        sums = [0.0] * len(pairs)
        for batch in plan:
            values = await self._on_worker(score_batch, loaded, [pairs[i] for i in batch.prompts])
            for index, value in zip(batch.prompts, values, strict=True):
                sums[index] = value
        return LogprobsOutput(model=self._state_of(loaded), logprobs=sums, tokens=[len(r) for _, r in pairs])

    async def generate(self, job: GenerationJob) -> GenerationOutput:
        cancelled = threading.Event()
        try:
            return await self._generate(job, cancelled)
        except asyncio.CancelledError:
            cancelled.set()  # a batch running on the worker now stops at its next token
            raise

    async def _generate(self, job: GenerationJob, cancelled: threading.Event) -> GenerationOutput:
        loaded = self._loaded()  # this request's model, whatever loads happen meanwhile
        state = self._state_of(loaded)
        texts, prompt_ids, stops = await self._on_worker(_encode_job, loaded, job)
        job = replace(job, stop=stops)
        check_context(prompt_ids, job.max_new_tokens, loaded.context_length)

        seed = job.seed if job.seed is not None else fresh_seed()
        # Greedy rows of one prompt are identical: generate one, copy it n times.
        rows = job.n if job.do_sample else 1
        plan = plan_batches(
            [len(ids) for ids in prompt_ids], rows, job.max_new_tokens, self._settings.token_budget
        )
        samples: list[list[GeneratedSample | None]] = [[None] * rows for _ in job.prompts]
        for number, batch in enumerate(plan):
            batch_seed = derive_seed(seed, number)
            max_new = draw_max_tokens(job.min_new_tokens, job.max_new_tokens, batch_seed)
            groups = await self._on_worker(
                self._run_batch,
                cancelled,
                loaded,
                [prompt_ids[i] for i in batch.prompts],
                batch.rows,
                job,
                max_new,
                batch_seed,
            )
            for prompt_index, group in zip(batch.prompts, groups, strict=True):
                samples[prompt_index][batch.first_row : batch.first_row + batch.rows] = group
        filled = [[s for s in group if s is not None] for group in samples]
        if any(len(group) != rows for group in filled):
            raise RuntimeError(f"batch plan {plan} left samples unfilled")  # a planner bug, not bad input
        if not job.do_sample:
            filled = [group * job.n for group in filled]
        prompt_logprobs = None
        if job.echo_logprobs:
            prompt_logprobs = await self._on_worker(
                prompt_token_logprobs, loaded, prompt_ids, job.top_logprobs
            )
        return GenerationOutput(
            model=state,
            seed=seed,
            prompt_tokens=[len(ids) for ids in prompt_ids],
            samples=filled,
            prompt_texts=texts,
            prompt_logprobs=prompt_logprobs,
            prompt_ids=prompt_ids,
        )

    # ------------------------------------------------------------------------------------------------

    def _run_batch(self, cancelled: threading.Event, *args: Any) -> list[list[GeneratedSample]]:
        """:func:`run_batch` on the worker, for a request that may be cancelled meanwhile; a ``generate``
        cut short by its cancellation is counted (``generator_stopped_batches_total``)."""
        try:
            return run_batch(*args, on_generate=self._telemetry.observe_batch, cancelled=cancelled)
        except GenerationCancelled as exc:
            if exc.stopped:
                self._telemetry.stopped_batches.inc()
                log.info("stopped a generate call of a cancelled request at its next token")
            raise

    def _load(self, path: str) -> LoadedModel:
        return load_model(
            path,
            self._device,
            trust_remote_code=self._settings.trust_remote_code,
            shared_prefill=self._settings.shared_prefill,
        )

    def _install(self, loaded: LoadedModel) -> None:
        self._current = loaded  # a single reference assignment: atomic for every reader
        self._load_count += 1
        self._telemetry.loads.labels(outcome="loaded").inc()
        log.info(
            "serving %s (load %d, %s on %s)", loaded.name, self._load_count, loaded.dtype_name, loaded.device
        )

    def _loaded(self) -> LoadedModel:
        if self._current is None:
            raise RuntimeError("no model loaded yet")
        return self._current

    def _state_of(self, loaded: LoadedModel) -> ModelState:
        return ModelState(
            name=loaded.name,
            checkpoint=loaded.checkpoint,
            version=loaded.version,
            load_count=self._load_count,
            loaded_at=loaded.loaded_at,
            context_length=loaded.context_length,
            dtype=loaded.dtype_name,
            device=loaded.device.type,
        )

    async def _on_worker(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._worker, fn, *args)


def _encode_job(loaded: LoadedModel, job: GenerationJob) -> tuple[list[str], list[list[int]], list[str]]:
    """The rendered prompts, their ids, and the stop strings (the format's default when none given)."""
    texts, ids = loaded.codec.encode_prompts(job.prompts, job.prompt_format, job.truncate)
    return texts, ids, loaded.codec.stop_strings(job.stop, job.prompt_format)


def _encode_scoring(loaded: LoadedModel, job: ScoringJob) -> list[tuple[list[int], list[int]]]:
    return loaded.codec.encode_scoring(job)

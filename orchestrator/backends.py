"""Adapters from the service clients to the RAFT loop's protocols (see ``raft_loop.Backends``).

The loop only knows "sample", "score", "train", "serve this checkpoint"; which server answers (our
generator, vLLM, TGI; the rewarder; the Celery trainer) is decided here from settings and the run's
overrides.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Literal

from orchestrator.raft_loop import Backends, PolicyServer, RunCancelled, Sampler, Scorer
from orchestrator.service_urls import ensure_run_urls_allowed
from orchestrator.settings import OrchestratorSettings
from raftflow.chunks import GENERATOR_REQUESTS_IN_FLIGHT
from raftflow.clients.errors import ComponentUnavailable
from raftflow.clients.generator import CompletionsClient
from raftflow.clients.rewarder import RewarderClient
from raftflow.clients.tgi_sampler import TGISamplerClient
from raftflow.clients.trainer import TrainerClient
from raftflow.conversation import default_stop, render_prompt
from raftflow.modeling import checkpoint_version
from raftflow.schemas.generation import Sample, SamplingParams
from raftflow.schemas.jobs import JobProgress, JobResult, SFTJob
from raftflow.schemas.runs import RunRequest


class NotARaftflowGenerator(RuntimeError):
    """The run's generator URL answers OpenAI's API but cannot hot-load checkpoints."""


class GeneratorPolicyServer:
    """Keeps our generator serving the run's current checkpoint (``POST /v1/load`` when it differs)."""

    def __init__(self, client: CompletionsClient) -> None:
        self.client = client

    async def ensure_loaded(self, checkpoint: str) -> None:
        served = await self.client.models()
        if "checkpoint" not in served:
            # vLLM, or another OpenAI server: no /v1/load, so RAFT's next iteration could not sample
            # from the checkpoint it trained. Say what works instead of failing on a 404 later.
            raise NotARaftflowGenerator(
                f"the generator at {self.client.base_url} is not a raftflow generator (its /v1/models "
                "reports no checkpoint, and it has no /v1/load to serve each iteration's checkpoint). "
                "For vLLM, put raftflow's generator in front of it: python -m services.generator "
                "--backend vllm --vllm-url URL (or let it start vLLM: --backend vllm --model PATH)"
            )
        if not _is_checkpoint(served.get("checkpoint"), served.get("version"), checkpoint):
            await self.client.load_checkpoint(checkpoint)

    async def sleep(self) -> None:
        """Hand the generator's GPU memory to the trainer (vLLM sleep mode, level 1)."""
        await self.client.sleep(1)

    async def wake_up(self) -> None:
        await self.client.wake_up()

    async def serves(self, checkpoint: str) -> bool:
        """Whether the generator serves ``checkpoint`` now: the loop asks after each call, as a
        generator restarted mid-call comes back on its start-up model (raft_loop.on_policy)."""
        served = await self.client.models()
        return _is_checkpoint(served.get("checkpoint"), served.get("version"), checkpoint)

    async def ensure_reference(self, checkpoint: str) -> None:
        """Make ``checkpoint`` (the run's initial policy) the generator's reference model, for the KL
        estimate; skipped when it already is (same path and version), as loads cost seconds."""
        served = await self.client.models()
        if not _is_checkpoint(
            served.get("reference_checkpoint"), served.get("reference_version"), checkpoint
        ):
            await self.client.load_reference(checkpoint)

    async def sample_logprobs(
        self, prompts: list[str], samples: list[Sample], model: Literal["current", "reference"] = "current"
    ) -> list[float]:
        """Sum of log p(sample | prompt) per sample under the ``current`` or ``reference`` model, of its
        sampled token ids when it carries them (EOS included), else of its text."""
        return await self.client.sample_logprobs(prompts, samples, model)

    async def perplexity(self, prompts: list[str], responses: list[str]) -> float:
        """The served model's perplexity of held-out responses (the run's eval_pairs)."""
        return await self.client.perplexity(prompts, responses)


def _urls(
    run_list: Sequence[object] | None, run_one: object | None, settings_list: list[str], settings_one: str
) -> list[str]:
    """The replicas a run uses: the run's list or URL, else the settings' list or URL."""
    if run_list:
        return [str(url) for url in run_list]
    if run_one is not None:
        return [str(run_one)]
    return list(settings_list) or [settings_one]


def _is_checkpoint(served: str | None, version: str | None, checkpoint: str) -> bool:
    """Whether the generator's report names ``checkpoint``. The generator reports the resolved path;
    the version (a hash of the weight files' stats) also catches a checkpoint rewritten in place."""
    return served in (checkpoint, str(Path(checkpoint).resolve())) and version == checkpoint_version(
        checkpoint
    )


class FixedPolicyServer:
    """A server that cannot hot-load weights (TGI, a plain vLLM): fine for the first iteration only.

    RAFT needs the next iteration to sample from the newly trained checkpoint; rather than silently
    sampling from stale weights we fail with what to do instead.
    """

    def __init__(self, initial: str, kind: str) -> None:
        self.initial, self.kind = initial, kind

    async def ensure_loaded(self, checkpoint: str) -> None:
        if checkpoint != self.initial:
            raise RuntimeError(
                f"the {self.kind} server cannot load {checkpoint} without a restart; use raftflow's "
                "generator (generator_backend='openai' at a raftflow generator URL) for multi-iteration runs"
            )


class HHRenderingSampler:
    """Renders prompts in the HH form before a sampler that sends text as is (TGI): the HH form needs
    no tokenizer, so it is the one structured format such a server can be given. Without stop strings
    of the run's own, samples stop at the next turn as raftflow's generator stops them in hh."""

    def __init__(self, sampler: Sampler) -> None:
        self.sampler = sampler

    async def sample(self, prompts: list[str], n: int, params: SamplingParams) -> list[list[Sample]]:
        if params.stop is None:
            params = params.model_copy(update={"stop": default_stop("hh")})
        return await self.sampler.sample([render_prompt(p, "hh") for p in prompts], n, params)


class RewardScorer:
    def __init__(self, client: RewarderClient) -> None:
        self.client = client

    async def score(self, prompts: list[str], responses: list[str]) -> list[float]:
        return await self.client.score(prompts, responses)


class QueueTrainer:
    """Submits the job to the Celery queue and follows it; a job that no worker picks up within
    ``retry_seconds`` fails the run with a message naming the trainer."""

    def __init__(self, client: TrainerClient, redis_url: str, retry_seconds: float) -> None:
        self.client, self.redis_url, self.retry_seconds = client, redis_url, retry_seconds

    async def train(self, job: SFTJob, on_progress: Callable[[JobProgress], None]) -> JobResult:
        await asyncio.to_thread(self.client.submit, job)
        pending_since = time.monotonic()

        def watch(progress: JobProgress) -> None:
            nonlocal pending_since
            if progress.state != "PENDING":
                pending_since = time.monotonic()
            elif time.monotonic() - pending_since > self.retry_seconds:
                raise ComponentUnavailable(
                    "trainer",
                    self.redis_url,
                    self.retry_seconds,
                    RuntimeError(f"no trainer worker picked up job {job.job_id}"),
                )
            on_progress(progress)

        # Poll often: a coarse interval adds up to a whole interval of idle time to every iteration
        # (one small Redis read per poll; the loop writes its store only when progress changes).
        try:
            return await asyncio.to_thread(self.client.wait, job.job_id, None, 0.05, watch)
        except RunCancelled:
            # The run is over: the job must not keep training (and holding the device) behind it.
            await asyncio.to_thread(self.client.cancel, job.job_id)
            raise


async def open_backends(
    settings: OrchestratorSettings, request: RunRequest, stack: AsyncExitStack
) -> Backends:
    """Clients for one run; ``stack`` closes them when the run ends. Every URL is checked against the
    allowlist first (``orchestrator.service_urls``): the token goes only to configured services."""
    ensure_run_urls_allowed(request, settings)
    token = settings.outbound_token()
    common = {
        "api_token": token,
        "timeout": settings.request_timeout,
        "retry_seconds": settings.retry_seconds,
    }
    generator_urls = _urls(
        request.generator_urls, request.generator_url, settings.generator_urls, settings.generator_url
    )
    rewarder_urls = _urls(
        request.rewarder_urls, request.rewarder_url, settings.rewarder_urls, settings.rewarder_url
    )

    if request.generator_backend == "tgi":
        tgi = await stack.enter_async_context(
            TGISamplerClient(generator_urls[0], concurrency=settings.tgi_concurrency, **common)
        )
        sampler: Sampler = HHRenderingSampler(tgi) if request.prompt_format == "hh" else tgi
        policy_server: PolicyServer = FixedPolicyServer(request.policy, "TGI")
        sample_concurrency = 1
    else:
        servers = [
            GeneratorPolicyServer(
                await stack.enter_async_context(
                    CompletionsClient(
                        url,
                        prompts_per_request=settings.sample_chunk_prompts,
                        prompt_format=request.prompt_format,
                        **common,
                    )
                )
            )
            for url in generator_urls
        ]
        if len(servers) == 1:  # the one-URL path stays exactly as it was
            sampler, policy_server = servers[0].client, servers[0]
        else:
            from orchestrator.replicas import GeneratorPool

            sampler = policy_server = GeneratorPool(servers, GENERATOR_REQUESTS_IN_FLIGHT)
        sample_concurrency = len(servers) * GENERATOR_REQUESTS_IN_FLIGHT
    scorers = [
        RewardScorer(
            await stack.enter_async_context(
                RewarderClient(url, items_per_request=settings.score_chunk_items, **common)
            )
        )
        for url in rewarder_urls
    ]
    if len(scorers) == 1:
        scorer: Scorer = scorers[0]
    else:
        from orchestrator.replicas import RewarderPool

        scorer = RewarderPool(scorers)  # one call in flight per replica: see raft_loop.Backends
    gold = None
    if request.gold_rewarder_url is not None:
        gold_client = await stack.enter_async_context(
            RewarderClient(
                str(request.gold_rewarder_url), items_per_request=settings.score_chunk_items, **common
            )
        )
        gold = RewardScorer(gold_client)
    trainer = QueueTrainer(
        TrainerClient(settings.redis_url, retry_seconds=settings.retry_seconds),
        settings.redis_url,
        settings.retry_seconds,
    )
    return Backends(
        sampler=sampler,
        scorer=scorer,
        sample_concurrency=sample_concurrency,
        score_concurrency=len(scorers),
        trainer=trainer,
        policy_server=policy_server,
        gold_scorer=gold,
    )

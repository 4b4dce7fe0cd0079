"""``POST /v1/completions``: OpenAI/vLLM completions, with ``n`` samples per prompt and ``min_tokens``."""

from __future__ import annotations

import time
import uuid

from fastapi import APIRouter

from raftflow.schemas.generation import CompletionChoice, CompletionRequest, CompletionResponse, Usage
from services.generator.deps import EngineDep, MetricsDep, SettingsDep
from services.generator.engine import GenerationJob
from services.generator.jobs import UNAVAILABLE, check_limit, run_job

protected = APIRouter(tags=["openai"])


@protected.post("/v1/completions", response_model=CompletionResponse, responses=UNAVAILABLE)
async def create_completion(
    body: CompletionRequest, engine: EngineDep, settings: SettingsDep, metrics: MetricsDep
) -> CompletionResponse:
    prompts = body.prompts
    check_limit("prompt", len(prompts), settings.max_prompts, "GENERATOR_MAX_PROMPTS")
    check_limit("n", body.n, settings.max_n, "GENERATOR_MAX_N")
    check_limit("max_tokens", body.max_tokens, settings.max_tokens, "GENERATOR_MAX_TOKENS")
    job = GenerationJob(
        prompts=prompts,
        n=body.n,
        max_new_tokens=body.max_tokens,
        min_new_tokens=body.min_tokens,
        do_sample=not body.greedy,
        temperature=body.temperature,
        top_p=body.top_p,
        top_k=max(body.top_k, 0),
        seed=body.seed,
        stop=body.stop or [],
    )
    output = await run_job(engine, metrics, job, "prompt", indexed=not isinstance(body.prompt, str))

    choices = [
        CompletionChoice(
            index=prompt_index * body.n + j,
            text=sample.text,
            finish_reason="length" if sample.finish_reason == "length" else "stop",
            prompt_index=prompt_index,
            completion_tokens=sample.completion_tokens,
        )
        for prompt_index, group in enumerate(output.samples)
        for j, sample in enumerate(group)
    ]
    prompt_tokens = sum(output.prompt_tokens)
    completion_tokens = sum(choice.completion_tokens for choice in choices)
    return CompletionResponse(
        id=f"cmpl-{uuid.uuid4().hex}",
        created=int(time.time()),
        model=output.model.name,
        system_fingerprint=output.model.version,
        choices=choices,
        usage=Usage(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
        ),
    )

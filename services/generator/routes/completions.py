"""``POST /v1/completions`` and ``POST /v1/chat/completions``: OpenAI/vLLM sampling with ``n`` samples
per prompt, ``min_tokens``, and raftflow's ``prompt_format`` (how a prompt becomes model text)."""

from __future__ import annotations

import itertools
import time
import uuid
from dataclasses import replace

from fastapi import APIRouter, Request

from raftflow.conversation import PromptFormat, messages_to_text
from raftflow.schemas.generation import (
    ChatChoice,
    ChatChoiceMessage,
    ChatCompletionRequest,
    ChatCompletionResponse,
    CompletionChoice,
    CompletionLogprobs,
    CompletionRequest,
    CompletionResponse,
    SamplingParams,
    Usage,
)
from services.generator.deps import EngineDep, SettingsDep, TelemetryDep
from services.generator.engine import GeneratedSample, GenerationJob, GenerationOutput
from services.generator.jobs import UNAVAILABLE, check_limit, run_job
from services.generator.settings import GeneratorSettings

protected = APIRouter(tags=["openai"])


@protected.post("/v1/completions", response_model=CompletionResponse, responses=UNAVAILABLE)
async def create_completion(
    body: CompletionRequest,
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    telemetry: TelemetryDep,
) -> CompletionResponse:
    prompts = body.prompts
    check_limit("prompt", len(prompts), settings.max_prompts, "GENERATOR_MAX_PROMPTS")
    job = _job(body, prompts, body.n, body.prompt_format, settings)
    if body.logprobs is not None:
        job = replace(job, logprobs=True, top_logprobs=body.logprobs, echo_logprobs=body.echo)
    indexed = not isinstance(body.prompt, str)
    output = await run_job(request, engine, telemetry, job, "prompt", indexed=indexed)

    choices = [
        CompletionChoice(
            index=prompt_index * body.n + j,
            text=(output.prompt_texts[prompt_index] if body.echo else "") + sample.text,
            finish_reason="length" if sample.finish_reason == "length" else "stop",
            logprobs=_logprobs(output, prompt_index, sample, body.logprobs)
            if body.logprobs is not None
            else None,
            prompt_index=prompt_index,
            completion_tokens=sample.completion_tokens,
            token_ids=sample.token_ids if body.return_token_ids else None,
            prompt_token_ids=output.prompt_ids[prompt_index]
            if body.return_token_ids and output.prompt_ids is not None
            else None,
        )
        for prompt_index, group in enumerate(output.samples)
        for j, sample in enumerate(group)
    ]
    return CompletionResponse(
        id=f"cmpl-{uuid.uuid4().hex}",
        created=int(time.time()),
        model=output.model.name,
        system_fingerprint=output.model.version,
        choices=choices,
        usage=_usage(output),
    )


@protected.post("/v1/chat/completions", response_model=ChatCompletionResponse, responses=UNAVAILABLE)
async def create_chat_completion(
    body: ChatCompletionRequest,
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    telemetry: TelemetryDep,
) -> ChatCompletionResponse:
    """The conversation rendered with the checkpoint's chat template ('auto': the HH form when the
    tokenizer has none, or the format its training recorded), ``n`` samples of the assistant's reply."""
    conversation = messages_to_text([m.model_dump() for m in body.messages])
    job = _job(body, [conversation], body.n, "auto", settings)
    output = await run_job(request, engine, telemetry, job, "messages", indexed=False)
    choices = [
        ChatChoice(
            index=j,
            message=ChatChoiceMessage(content=sample.text),
            finish_reason="length" if sample.finish_reason == "length" else "stop",
            completion_tokens=sample.completion_tokens,
        )
        for j, sample in enumerate(output.samples[0])
    ]
    return ChatCompletionResponse(
        id=f"chatcmpl-{uuid.uuid4().hex}",
        created=int(time.time()),
        model=output.model.name,
        system_fingerprint=output.model.version,
        choices=choices,
        usage=_usage(output),
    )


def _job(
    params: SamplingParams, prompts: list[str], n: int, fmt: PromptFormat, settings: GeneratorSettings
) -> GenerationJob:
    check_limit("n", n, settings.max_n, "GENERATOR_MAX_N")
    check_limit("max_tokens", params.max_tokens, settings.max_tokens, "GENERATOR_MAX_TOKENS")
    return GenerationJob(
        prompts=prompts,
        n=n,
        max_new_tokens=params.max_tokens,
        min_new_tokens=params.min_tokens,
        do_sample=not params.greedy,
        temperature=params.temperature,
        top_p=params.top_p,
        top_k=max(params.top_k, 0),
        seed=params.seed,
        stop=params.stop,
        prompt_format=fmt,
    )


def _logprobs(
    output: GenerationOutput, prompt_index: int, sample: GeneratedSample, top_n: int
) -> CompletionLogprobs:
    """OpenAI's logprobs object: the echoed prompt's tokens first (when echo), then the completion's."""
    tokens: list[str] = []
    values: list[float | None] = []
    top: list[dict[str, float]] = []
    if output.prompt_logprobs is not None:
        prompt = output.prompt_logprobs[prompt_index]
        tokens, values = list(prompt.tokens), list(prompt.logprobs)
        top = list(prompt.top or [{} for _ in prompt.tokens])
    tokens += sample.token_texts
    values += sample.logprobs or [None] * len(sample.token_texts)
    top += sample.top_logprobs or [{} for _ in sample.token_texts]
    offsets = list(itertools.accumulate((len(t) for t in tokens[:-1]), initial=0)) if tokens else []
    return CompletionLogprobs(
        tokens=tokens, token_logprobs=values, top_logprobs=top if top_n > 0 else None, text_offset=offsets
    )


def _usage(output: GenerationOutput) -> Usage:
    prompt_tokens = sum(output.prompt_tokens)
    completion_tokens = sum(s.completion_tokens for group in output.samples for s in group)
    return Usage(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
    )

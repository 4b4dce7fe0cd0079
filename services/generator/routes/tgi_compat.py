"""TGI's API served by the generator (whatever its engine): ``POST /generate``, ``POST /`` (what
``text_generation.Client`` calls) and ``GET /info``.

"TGI" plays three roles in raftflow, named apart: this module and ``tgi_compat_schemas`` *serve* TGI's
API; ``engine/tgi_engine.py`` is the engine that *forwards* to a remote TGI server; and
``raftflow.clients.tgi_sampler`` is the client that *samples from* a TGI server (the engine's, and the
orchestrator's with ``generator_backend: tgi``).

``best_of`` samples that many sequences in one batch and returns the one with the highest mean token
log-probability (TGI's rule), the others in ``details.best_of_sequences``. Unlike TGI, ``seed`` is
allowed with ``best_of`` (it makes the whole set reproducible).
"""

from __future__ import annotations

import importlib.metadata

from fastapi import APIRouter, Request

from raftflow.server.auth import CallerHasToken, public_model_id
from services.generator.deps import EngineDep, SettingsDep, TelemetryDep
from services.generator.engine import Engine, GeneratedSample, GenerationJob
from services.generator.jobs import UNAVAILABLE, check_limit, run_job
from services.generator.settings import GeneratorSettings
from services.generator.telemetry import GeneratorTelemetry
from services.generator.tgi_compat_schemas import (
    TGIBestOfSequence,
    TGIDetails,
    TGIInfo,
    TGIRequest,
    TGIResponse,
    TGIToken,
)

TGI_DEFAULT_MAX_NEW_TOKENS = 100

protected = APIRouter(tags=["tgi"])
public = APIRouter(tags=["tgi"])


@protected.post(
    "/generate", response_model=TGIResponse, response_model_exclude_none=True, responses=UNAVAILABLE
)
async def generate(
    body: TGIRequest, request: Request, engine: EngineDep, settings: SettingsDep, telemetry: TelemetryDep
) -> TGIResponse:
    return await _generate(body, request, engine, settings, telemetry)


@protected.post(
    "/", response_model=list[TGIResponse], response_model_exclude_none=True, responses=UNAVAILABLE
)
async def compat_generate(
    body: TGIRequest, request: Request, engine: EngineDep, settings: SettingsDep, telemetry: TelemetryDep
) -> list[TGIResponse]:
    """TGI's compatibility route answers with a one-element list; its client reads ``payload[0]``."""
    return [await _generate(body, request, engine, settings, telemetry)]


@public.get("/info", response_model=TGIInfo)
async def info(engine: EngineDep, settings: SettingsDep, full: CallerHasToken) -> TGIInfo:
    state = engine.state()
    context = state.context_length
    return TGIInfo(
        model_id=state.checkpoint if full else public_model_id(state.checkpoint, state.version),
        model_sha=state.version,
        model_dtype=state.dtype,
        model_device_type=state.device,
        max_concurrent_requests=settings.tgi_concurrency if settings.backend == "tgi" else 1,
        max_best_of=settings.max_n,
        max_input_tokens=None if context is None else context - 1,
        max_total_tokens=context,
        max_client_batch_size=settings.max_prompts,
        version=importlib.metadata.version("raftflow"),
        backend=settings.backend,
        load_count=state.load_count,
    )


async def _generate(
    body: TGIRequest,
    request: Request,
    engine: Engine,
    settings: GeneratorSettings,
    telemetry: GeneratorTelemetry,
) -> TGIResponse:
    params = body.parameters
    best_of = params.best_of or 1
    max_new_tokens = params.max_new_tokens or min(TGI_DEFAULT_MAX_NEW_TOKENS, settings.max_tokens)
    check_limit("parameters.best_of", best_of, settings.max_n, "GENERATOR_MAX_N")
    check_limit("parameters.max_new_tokens", max_new_tokens, settings.max_tokens, "GENERATOR_MAX_TOKENS")
    job = GenerationJob(
        prompts=[body.inputs],
        n=best_of,
        max_new_tokens=max_new_tokens,
        do_sample=params.sampling,
        temperature=params.temperature or 1.0,
        top_p=params.top_p or 1.0,
        top_k=params.top_k or 0,
        typical_p=params.typical_p or 1.0,
        repetition_penalty=params.repetition_penalty or 1.0,
        seed=params.seed,
        stop=params.stop,
        truncate=params.truncate,
        logprobs=True,
    )
    output = await run_job(request, engine, telemetry, job, "inputs", indexed=False)
    samples = output.samples[0]
    best = max(range(len(samples)), key=lambda i: _mean_logprob(samples[i]))
    prefix = body.inputs if params.return_full_text else ""
    seed = output.seed if params.sampling else None

    def text(sample: GeneratedSample) -> str:
        return prefix + sample.text + (sample.stop or "")

    if not params.details:
        return TGIResponse(generated_text=text(samples[best]))
    others = [
        TGIBestOfSequence(
            generated_text=text(sample),
            finish_reason=sample.finish_reason,
            generated_tokens=sample.completion_tokens,
            seed=seed,
            tokens=_tokens(sample),
        )
        for i, sample in enumerate(samples)
        if i != best
    ]
    return TGIResponse(
        generated_text=text(samples[best]),
        details=TGIDetails(
            finish_reason=samples[best].finish_reason,
            generated_tokens=samples[best].completion_tokens,
            seed=seed,
            tokens=_tokens(samples[best]),
            best_of_sequences=others if best_of > 1 else None,
        ),
    )


def _mean_logprob(sample: GeneratedSample) -> float:
    if not sample.logprobs:
        return float("-inf")
    return sum(sample.logprobs) / len(sample.logprobs)


def _tokens(sample: GeneratedSample) -> list[TGIToken]:
    ids = sample.token_ids or []
    logprobs = sample.logprobs or [None] * len(ids)
    return [
        TGIToken(id=token, text=text, logprob=logprob, special=special)
        for token, text, logprob, special in zip(
            ids, sample.token_texts, logprobs, sample.token_special, strict=True
        )
    ]

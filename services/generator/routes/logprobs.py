"""``POST /v1/logprobs``: log-probabilities of given responses under the served or the reference model.

Sampling cannot answer "how far has the policy moved from where it started": the orchestrator samples
eval responses from the current policy, then asks for their log-probabilities under the current and
the reference (initial) model, and averages the difference (a Monte-Carlo KL estimate). The model
stays in this process, so the orchestrator never imports torch.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, status

from raftflow.clients.errors import ComponentUnavailable
from raftflow.schemas.errors import error_responses
from raftflow.schemas.generation import LogprobsRequest, LogprobsResponse
from raftflow.server import limit_error
from services.generator.deps import EngineDep, SettingsDep, TelemetryDep
from services.generator.engine import (
    BackendRejected,
    ContextLengthExceeded,
    NoReferenceModel,
    PromptFormatRejected,
    ScoringJob,
    UnsupportedOperation,
)
from services.generator.jobs import until_disconnect

protected = APIRouter(tags=["raftflow"])


@protected.post(
    "/v1/logprobs",
    response_model=LogprobsResponse,
    responses=error_responses(
        409, e409="model=reference with no reference loaded, or a backend without logprobs."
    ),
)
async def sequence_logprobs(
    body: LogprobsRequest, request: Request, engine: EngineDep, settings: SettingsDep, telemetry: TelemetryDep
) -> LogprobsResponse:
    """Sum of log p(response tokens | prompt) per pair, at temperature 1 (the model's own distribution,
    whatever sampling parameters produced the responses): of the sampled token ids when given (EOS
    included), else of the response texts tokenized after their prompts. A client that disconnects
    cancels it."""
    if len(body.prompts) > settings.max_prompts:
        raise limit_error(
            "prompts",
            f"{len(body.prompts)} prompts exceed this server's limit of {settings.max_prompts} "
            "(setting GENERATOR_MAX_PROMPTS)",
            len(body.prompts),
            le=settings.max_prompts,
        )
    try:
        output = await until_disconnect(
            request,
            telemetry,
            engine.logprobs(
                ScoringJob(
                    prompts=body.prompts,
                    responses=body.responses,
                    response_ids=body.response_token_ids,
                    model=body.model,
                    prompt_format=body.prompt_format,
                    include_eos=body.include_eos,
                )
            ),
            "logprobs",
            f"{len(body.prompts)} pairs, {body.model} model",
        )
    except ContextLengthExceeded as exc:
        raise limit_error(
            f"responses.{exc.prompt_index}",
            f"prompt {exc.prompt_index} ({exc.prompt_tokens} tokens) with its response "
            f"({exc.max_new_tokens} tokens) exceeds the model's context length of {exc.context_length}",
            prompt_tokens=exc.prompt_tokens,
            response_tokens=exc.max_new_tokens,
            context_length=exc.context_length,
        ) from exc
    except PromptFormatRejected as exc:
        raise limit_error("prompt_format", str(exc), body.prompt_format) from exc
    except BackendRejected as exc:
        raise limit_error("prompts", str(exc)) from exc
    except (NoReferenceModel, UnsupportedOperation) as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    except ComponentUnavailable as exc:  # the vllm backend's server is down
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from exc
    return LogprobsResponse(
        logprobs=output.logprobs, tokens=output.tokens, model=output.model.name, version=output.model.version
    )

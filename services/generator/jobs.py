"""Run a generation job for a route and turn engine failures into HTTP answers.

Shared by the OpenAI and TGI routes, which differ only in the name of their prompt field.
"""

from __future__ import annotations

from fastapi import HTTPException, status

from raftflow.clients.errors import ComponentUnavailable
from raftflow.schemas.errors import error_responses
from raftflow.server import limit_error
from services.generator.engine import (
    BackendRejected,
    ContextLengthExceeded,
    Engine,
    GenerationJob,
    GenerationOutput,
    PromptFormatRejected,
)
from services.generator.telemetry import GeneratorTelemetry

UNAVAILABLE = error_responses(503, e503="The TGI server behind this generator did not answer in time.")
"""``responses=`` of every route that runs a job: :func:`run_job` answers 503 when the backend is down."""


async def run_job(
    engine: Engine, telemetry: GeneratorTelemetry, job: GenerationJob, prompt_field: str, indexed: bool
) -> GenerationOutput:
    """``prompt_field``: the request's name for the prompt; ``indexed``: whether it is a list, so a
    too-long prompt is reported as ``prompt.3`` rather than ``prompt``."""
    telemetry.in_progress.inc()
    try:
        output = await engine.generate(job)
    except ContextLengthExceeded as exc:
        field = f"{prompt_field}.{exc.prompt_index}" if indexed else prompt_field
        raise limit_error(
            field,
            str(exc),
            prompt_tokens=exc.prompt_tokens,
            max_new_tokens=exc.max_new_tokens,
            context_length=exc.context_length,
        ) from exc
    except PromptFormatRejected as exc:
        raise limit_error("prompt_format", str(exc), job.prompt_format) from exc
    except BackendRejected as exc:
        raise limit_error(prompt_field, str(exc)) from exc
    except ComponentUnavailable as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from exc
    finally:
        telemetry.in_progress.dec()
    samples = [sample for group in output.samples for sample in group]
    telemetry.observe_output(
        prompt_tokens=sum(output.prompt_tokens),
        samples=len(samples),
        completion_tokens=sum(sample.completion_tokens for sample in samples),
    )
    return output


def check_limit(field: str, value: int, limit: int, setting: str) -> None:
    """Reject a value above a configured maximum with a 422 naming the field, the limit and the
    setting that raises it (static limits are pydantic Field constraints instead)."""
    if value > limit:
        raise limit_error(
            field,
            f"{field}={value} exceeds this server's limit of {limit} (setting {setting})",
            value,
            le=limit,
        )

"""Run a generation job for a route and turn engine failures into HTTP answers.

Shared by the OpenAI and TGI routes, which differ only in the name of their prompt field. A job runs
only while its client waits for it: a disconnect cancels it (``until_disconnect``), so abandoned
requests do not hold the generation thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable
from typing import Literal, TypeVar

from fastapi import HTTPException, Request, status

from raftflow.clients.errors import ComponentUnavailable
from raftflow.schemas.errors import error_responses
from raftflow.server import limit_error
from raftflow.server.disconnect import ClientDisconnected, cancel_on_disconnect
from services.generator.engine import (
    BackendRejected,
    ContextLengthExceeded,
    Engine,
    GenerationJob,
    GenerationOutput,
    PromptFormatRejected,
)
from services.generator.telemetry import GeneratorTelemetry

log = logging.getLogger(__name__)
T = TypeVar("T")

UNAVAILABLE = error_responses(503, e503="The TGI server behind this generator did not answer in time.")
"""``responses=`` of every route that runs a job: :func:`run_job` answers 503 when the backend is down."""


async def until_disconnect(
    request: Request,
    telemetry: GeneratorTelemetry,
    work: Awaitable[T],
    kind: Literal["generate", "logprobs"],
    what: str,
) -> T:
    """``await work`` while the client waits for it. When the client disconnects first (its timeout,
    a cancelled run), the work is cancelled: the engine drops its queued batches and stops a running
    ``generate`` at its next token. Counted in ``generator_cancelled_requests_total{work=kind}`` and
    logged with ``what`` (the request's size); the route then ends with a 499 nobody reads."""
    started = time.perf_counter()
    try:
        return await cancel_on_disconnect(request, work)
    except ClientDisconnected:
        telemetry.cancelled.labels(work=kind).inc()
        seconds = time.perf_counter() - started
        log.info("client disconnected after %.1f s: cancelled its %s (%s)", seconds, kind, what)
        raise


async def run_job(
    request: Request,
    engine: Engine,
    telemetry: GeneratorTelemetry,
    job: GenerationJob,
    prompt_field: str,
    indexed: bool,
) -> GenerationOutput:
    """``prompt_field``: the request's name for the prompt; ``indexed``: whether it is a list, so a
    too-long prompt is reported as ``prompt.3`` rather than ``prompt``."""
    telemetry.in_progress.inc()
    try:
        output = await until_disconnect(
            request,
            telemetry,
            engine.generate(job),
            "generate",
            f"{len(job.prompts)} prompts x n {job.n} x {job.max_new_tokens} tokens",
        )
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

"""The served checkpoint: ``GET /v1/models`` (open) and ``POST /v1/load`` (hot reload, protected).

``POST /v1/load`` also loads the reference model of ``/v1/logprobs`` (``reference``), with the same
path confinement and error handling: the orchestrator points it at a run's initial policy.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from fastapi import APIRouter, HTTPException, status

from raftflow.clients.errors import ComponentUnavailable
from raftflow.paths import PathNotAllowed, confine_model_dir, resolve_inside
from raftflow.schemas.errors import error_responses
from raftflow.schemas.generation import (
    LoadRequest,
    LoadResponse,
    ModelCard,
    ModelList,
    SleepRequest,
    SleepResponse,
)
from raftflow.server import limit_error
from raftflow.server.auth import CallerHasToken, public_model_id
from services.generator.deps import EngineDep, SettingsDep
from services.generator.engine import LoadFailed, UnsupportedOperation
from services.generator.settings import GeneratorSettings

T = TypeVar("T")

public = APIRouter(tags=["models"])
protected = APIRouter(tags=["models"])


@public.get("/v1/models", response_model=ModelList)
async def list_models(engine: EngineDep, full: CallerHasToken) -> ModelList:
    """Open; a caller without the token sees model ids (``name@version``), not checkpoint paths."""
    state = engine.state()
    reference = engine.reference_state()

    def shown(checkpoint: str, version: str) -> str:
        return checkpoint if full else public_model_id(checkpoint, version)

    card = ModelCard(
        id=state.name if full else shown(state.checkpoint, state.version),
        created=int(state.loaded_at),
        root=shown(state.checkpoint, state.version),
        version=state.version,
        load_count=state.load_count,
        max_model_len=state.context_length,
    )
    return ModelList(
        data=[card],
        checkpoint=shown(state.checkpoint, state.version),
        version=state.version,
        load_count=state.load_count,
        reference_checkpoint=shown(reference.checkpoint, reference.version) if reference else None,
        reference_version=reference.version if reference else None,
    )


@protected.post(
    "/v1/load",
    response_model=LoadResponse,
    responses=error_responses(409, e409="This backend cannot load checkpoints (TGI)."),
)
async def load_checkpoint(body: LoadRequest, engine: EngineDep, settings: SettingsDep) -> LoadResponse:
    """Returns once the new checkpoint serves; requests already running finish on the old one.

    With both ``path`` and ``reference``, both paths are checked before either load starts, and the
    served checkpoint loads first: a failed reference then still leaves the new policy serving.
    """
    path = _allowed(body.path, "path", settings) if body.path is not None else None
    reference_path = _allowed(body.reference, "reference", settings) if body.reference is not None else None
    started = time.perf_counter()
    previous = current = engine.state()
    try:
        if path is not None:
            previous, current = await _load(engine.load, path, "path", body.path)
        if reference_path is not None:
            await _load(engine.load_reference, reference_path, "reference", body.reference)
    except UnsupportedOperation as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    except ComponentUnavailable as exc:  # the vllm backend's server is down: nothing was swapped
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from exc
    reference = engine.reference_state()
    return LoadResponse(
        model=current.name,
        checkpoint=current.checkpoint,
        version=current.version,
        load_count=current.load_count,
        load_seconds=round(time.perf_counter() - started, 3),
        previous_checkpoint=previous.checkpoint,
        previous_version=previous.version,
        reference_checkpoint=reference.checkpoint if reference else None,
        reference_version=reference.version if reference else None,
    )


@protected.post(
    "/v1/sleep",
    response_model=SleepResponse,
    responses=error_responses(409, e409="Only the vllm engine on a GPU with sleep mode can sleep."),
)
async def sleep(body: SleepRequest, engine: EngineDep) -> SleepResponse:
    """Free the accelerator's memory for a trainer on the same GPU (vLLM's sleep mode) until
    ``POST /v1/wake_up``; sampling meanwhile fails. 409 on CPU and on the other engines."""
    try:
        await engine.sleep(body.level)
    except UnsupportedOperation as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    return SleepResponse(sleeping=True)


@protected.post(
    "/v1/wake_up",
    response_model=SleepResponse,
    responses=error_responses(409, e409="Only the vllm engine on a GPU with sleep mode can sleep."),
)
async def wake_up(engine: EngineDep) -> SleepResponse:
    try:
        await engine.wake_up()
    except UnsupportedOperation as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    return SleepResponse(sleeping=False)


def _allowed(requested: str, field: str, settings: GeneratorSettings) -> str:
    """The path to load: resolved inside GENERATOR_LOAD_ROOTS when set, as given otherwise. A LoRA
    adapter's base model (its adapter_config.json) must be inside them too: loading the adapter loads
    it, and a hub id is refused like the path itself would be; so must every file the load reads
    (symlinks in the directory, files tokenizer_config.json names)."""
    if not settings.load_roots:
        return requested
    try:
        resolved = str(resolve_inside(requested, settings.load_roots))
        confine_model_dir(resolved, settings.load_roots, hub_ids=False)
    except PathNotAllowed as exc:
        raise limit_error(field, f"{exc} (setting GENERATOR_LOAD_ROOTS)", requested) from exc
    return resolved


async def _load(load: Callable[[str], Awaitable[T]], path: str, field: str, requested: str | None) -> T:
    """Run one engine load; a checkpoint that does not load is a 422 on ``field``."""
    try:
        return await load(path)
    except LoadFailed as exc:
        kept = "still serving the previous checkpoint" if field == "path" else "the previous reference stays"
        raise limit_error(field, f"{exc}; {kept}", requested) from exc

"""The served checkpoint: ``GET /v1/models`` (open) and ``POST /v1/load`` (hot reload, protected)."""

from __future__ import annotations

import time

from fastapi import APIRouter, HTTPException, status

from raftflow.paths import PathNotAllowed, resolve_inside
from raftflow.schemas.generation import LoadRequest, LoadResponse, ModelCard, ModelList
from raftflow.server import limit_error
from services.generator.deps import EngineDep, SettingsDep
from services.generator.engine import LoadFailed, UnsupportedOperation

public = APIRouter(tags=["models"])
protected = APIRouter(tags=["models"])


@public.get("/v1/models", response_model=ModelList)
async def list_models(engine: EngineDep) -> ModelList:
    state = engine.state()
    card = ModelCard(
        id=state.name,
        created=int(state.loaded_at),
        root=state.checkpoint,
        version=state.version,
        load_count=state.load_count,
        max_model_len=state.context_length,
    )
    return ModelList(
        data=[card], checkpoint=state.checkpoint, version=state.version, load_count=state.load_count
    )


@protected.post("/v1/load", response_model=LoadResponse)
async def load_checkpoint(body: LoadRequest, engine: EngineDep, settings: SettingsDep) -> LoadResponse:
    """Returns once the new checkpoint serves; requests already running finish on the old one."""
    path = body.path
    if settings.load_roots:
        try:
            path = str(resolve_inside(body.path, settings.load_roots))
        except PathNotAllowed as exc:
            raise limit_error("path", f"{exc} (setting GENERATOR_LOAD_ROOTS)", body.path) from exc
    started = time.perf_counter()
    try:
        previous, current = await engine.load(path)
    except LoadFailed as exc:
        raise limit_error("path", f"{exc}; still serving the previous checkpoint", body.path) from exc
    except UnsupportedOperation as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    return LoadResponse(
        model=current.name,
        checkpoint=current.checkpoint,
        version=current.version,
        load_count=current.load_count,
        load_seconds=round(time.perf_counter() - started, 3),
        previous_checkpoint=previous.checkpoint,
        previous_version=previous.version,
    )

"""``GET /health``: 200 once a model serves (TGI backend: while TGI answers), else 503; open, so
orchestrators and probes need no token (without one, the model is named by id, not path)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from raftflow.schemas.errors import error_responses
from raftflow.server.auth import CallerHasToken, public_model_id
from services.generator.deps import EngineDep

public = APIRouter(tags=["health"])


@public.get(
    "/health", responses=error_responses(503, e503="No model loaded yet (TGI backend: TGI is not answering).")
)
async def health(engine: EngineDep, full: CallerHasToken) -> JSONResponse:
    if not await engine.ready():
        return JSONResponse({"status": "unavailable"}, status_code=503)
    state = engine.state()
    model = state.name if full else public_model_id(state.checkpoint, state.version)
    return JSONResponse({"status": "ok", "model": model, "version": state.version})

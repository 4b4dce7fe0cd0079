"""``GET /health``: 200 once a model serves (TGI backend: while TGI answers), else 503; open, so
orchestrators and probes need no token."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from services.generator.deps import EngineDep

public = APIRouter(tags=["health"])


@public.get("/health")
async def health(engine: EngineDep) -> JSONResponse:
    if not await engine.ready():
        return JSONResponse({"status": "unavailable"}, status_code=503)
    state = engine.state()
    return JSONResponse({"status": "ok", "model": state.name, "version": state.version})

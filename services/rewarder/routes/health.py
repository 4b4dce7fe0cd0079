"""``GET /health``: 200 once the reward source is loaded (the app only serves after its lifespan
start-up, so answering at all means ready)."""

from __future__ import annotations

from fastapi import APIRouter

from raftflow.schemas.reward import HealthResponse

router = APIRouter(tags=["status"])


@router.get("/health", response_model=HealthResponse)
async def health() -> HealthResponse:
    return HealthResponse()

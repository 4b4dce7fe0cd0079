"""``GET /info``: what is served and under which limits (open, like /health: no secrets in it)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from raftflow.schemas.reward import RewarderInfo
from services.rewarder.deps import get_scorer, get_settings
from services.rewarder.scoring import Scorer
from services.rewarder.settings import RewarderSettings

router = APIRouter(tags=["status"])


@router.get("/info", response_model=RewarderInfo)
async def info(
    scorer: Scorer = Depends(get_scorer), settings: RewarderSettings = Depends(get_settings)
) -> RewarderInfo:
    source = scorer.source
    return RewarderInfo(
        model=source.name,
        version=source.version,
        source=source.kind,
        format=scorer.style,
        max_items=settings.max_items,
        max_text_chars=settings.max_text_chars,
        max_length=source.max_length,
        max_batch_size=settings.max_batch_size,
        max_wait_ms=settings.max_wait_ms,
        device=source.device,
        dtype=source.dtype,
        calibration=scorer.calibration,
    )

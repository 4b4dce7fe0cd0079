"""``GET /info``: what is served and under which limits (open, like /health: no secrets in it, and no
paths for a caller without the token)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends

from raftflow.schemas.reward import RewarderInfo
from raftflow.server.auth import CallerHasToken, public_model_id
from services.rewarder.deps import get_scorer, get_settings
from services.rewarder.scoring import Scorer
from services.rewarder.settings import RewarderSettings

router = APIRouter(tags=["status"])


@router.get("/info", response_model=RewarderInfo)
async def info(
    full: CallerHasToken,
    scorer: Scorer = Depends(get_scorer),
    settings: RewarderSettings = Depends(get_settings),
) -> RewarderInfo:
    """Open; a caller without the token sees the model's id and the calibration file's name, not
    their paths."""
    source = scorer.source
    calibration = scorer.calibration
    if calibration is not None and not full:
        calibration = calibration.model_copy(update={"file": Path(calibration.file).name})
    return RewarderInfo(
        model=source.name if full else public_model_id(source.name, source.version),
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
        calibration=calibration,
    )

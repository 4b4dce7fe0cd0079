"""``POST /score``: the rewarder's own scoring endpoint."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from raftflow.schemas.reward import ScoreRequest, ScoreResponse
from raftflow.server import limit_error
from services.rewarder import intake
from services.rewarder.deps import get_scorer, get_settings, get_telemetry
from services.rewarder.scoring import Scorer
from services.rewarder.settings import RewarderSettings
from services.rewarder.telemetry import RewarderTelemetry

router = APIRouter(tags=["scoring"])


@router.post("/score", response_model=ScoreResponse)
async def score(
    body: ScoreRequest,
    scorer: Scorer = Depends(get_scorer),
    settings: RewarderSettings = Depends(get_settings),
    telemetry: RewarderTelemetry = Depends(get_telemetry),
) -> ScoreResponse:
    """Score ``inputs`` (prompt/response pairs the service formats) or ``texts`` (already formatted)."""
    if body.normalize and scorer.calibration is None:
        raise limit_error(
            "normalize",
            "normalize needs a calibration set; start the rewarder with --calibration-file "
            "(REWARDER_CALIBRATION_FILE)",
            True,
        )
    if body.inputs is not None:
        prepared = await intake.pairs("inputs", body.inputs, scorer, settings)
    else:
        assert body.texts is not None  # the schema guarantees exactly one of the two
        prepared = await intake.texts("texts", body.texts, scorer, settings)
    scores = await scorer.score(prepared)
    truncated = [p.truncated for p in prepared]
    telemetry.items.labels("/score").inc(len(prepared))
    telemetry.truncated.inc(sum(truncated))
    return ScoreResponse(
        scores=scorer.normalize(scores) if body.normalize else scores,
        truncated=truncated,
        normalized=body.normalize,
        model=scorer.source.name,
        version=scorer.source.version,
    )

"""``POST /get_reward``: OpenRLHF's remote reward-model API, so its clients can use us unchanged.

Scores are raw (OpenRLHF normalises on its side) and identical to ``/score`` with ``texts``, unless
``openrlhf_append_eos`` asks for OpenRLHF's own query clean-up (strip pad/EOS, append one EOS).
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Depends

from raftflow.schemas.reward import GetRewardRequest, GetRewardResponse
from services.rewarder import intake
from services.rewarder.deps import get_scorer, get_settings, get_telemetry
from services.rewarder.scoring import Scorer
from services.rewarder.settings import RewarderSettings
from services.rewarder.telemetry import RewarderTelemetry

router = APIRouter(tags=["scoring"])


@router.post("/get_reward", response_model=GetRewardResponse)
async def get_reward(
    body: GetRewardRequest,
    scorer: Scorer = Depends(get_scorer),
    settings: RewarderSettings = Depends(get_settings),
    telemetry: RewarderTelemetry = Depends(get_telemetry),
) -> GetRewardResponse:
    queries = body.query
    tokenizer = scorer.source.tokenizer
    if settings.openrlhf_append_eos and tokenizer is not None and tokenizer.eos_token:
        queries = [with_single_eos(q, tokenizer.eos_token, tokenizer.pad_token) for q in queries]
    prepared = await intake.texts("query", queries, scorer, settings, prompts=body.prompts)
    scores = await scorer.score(prepared)
    telemetry.items.labels("/get_reward").inc(len(prepared))
    telemetry.truncated.inc(sum(p.truncated for p in prepared))
    return GetRewardResponse(rewards=scores, scores=scores)


def with_single_eos(text: str, eos: str, pad: str | None) -> str:
    """OpenRLHF's serve_rm clean-up: no pad/EOS at either end, then exactly one EOS."""
    markers = "|".join(re.escape(token) for token in {eos, pad or eos})
    return re.sub(f"^(?:{markers})+|(?:{markers})+$", "", text) + eos

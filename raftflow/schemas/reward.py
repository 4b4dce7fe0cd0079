"""The rewarder's API bodies and the item a reward function receives, shared by the service and its
clients so both sides validate the same shapes.

Limits that depend on configuration (items per request, characters per text) are checked by the
service at run time; the static ones (non-empty lists, strings only, unknown fields refused) live
here as pydantic constraints.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class RewardItem(BaseModel):
    """One thing to score, as a reward function sees it (the ``module:function`` protocol).

    ``text`` is always set: the formatted conversation for ``inputs``, the text as sent for ``texts``.
    ``prompt`` and ``response`` are set when the caller gave them separately, so rule-based rewards can
    judge the response alone (most do) without parsing a template back apart.
    """

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    text: str
    prompt: str | None = None
    response: str | None = None


class PromptResponse(BaseModel):
    """A (prompt, response) pair; the service formats it for the reward model."""

    # strict: a body must have the types its schema documents (lax mode took 0.0 as false, "1" as 1).
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    prompt: str = Field(description="The prompt as the policy saw it, without any template.")
    response: str = Field(description="The policy's response alone.")


class ScoreRequest(BaseModel):
    """Body of ``POST /score``: exactly one of ``inputs`` or ``texts``."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    inputs: list[PromptResponse] | None = Field(
        default=None,
        min_length=1,
        description="Pairs the service formats (the reward tokenizer's chat template, else HH-RLHF form).",
    )
    texts: list[str] | None = Field(
        default=None, min_length=1, description="Texts already formatted the way the reward model expects."
    )
    normalize: bool = Field(
        default=False,
        description="Standardise scores with the mean/std of the start-up calibration set. A 422 when the "
        "service was started without one.",
    )

    @model_validator(mode="after")
    def _exactly_one_source(self) -> ScoreRequest:
        if (self.inputs is None) == (self.texts is None):
            raise ValueError("give exactly one of 'inputs' or 'texts'")
        return self


class ScoreResponse(BaseModel):
    """Scores in request order, with the identity of the reward that produced them (so stored scores
    can be traced to a model version, and scores from different versions are never mixed unknowingly)."""

    scores: list[float] = Field(description="One score per item, in request order.")
    truncated: list[bool] = Field(description="Per item: tokens were cut to fit the reward model's context.")
    normalized: bool = Field(description="Whether ``scores`` are standardised with the calibration stats.")
    model: str = Field(description="Reward model path/hub id, or ``module:function``.")
    version: str = Field(description="Checkpoint version of the model, or a hash of the function source.")


class GetRewardRequest(BaseModel):
    """OpenRLHF's remote reward model body: ``query`` holds full texts (prompt + response).

    ``prompts`` is optional; when given, each query that starts with its prompt is truncated like an
    ``inputs`` pair (prompt cut from the left) and reward functions receive the split. Other OpenRLHF
    fields (``labels``, ...) are accepted and ignored.
    """

    model_config = ConfigDict(extra="ignore", strict=True, allow_inf_nan=False)

    query: list[str] = Field(min_length=1, description="Full texts to score.")
    prompts: list[str] | None = Field(default=None, description="The prompt of each query, same order.")

    @model_validator(mode="after")
    def _prompts_match_queries(self) -> GetRewardRequest:
        if self.prompts is not None and len(self.prompts) != len(self.query):
            raise ValueError(
                f"'prompts' must have one entry per query: got {len(self.prompts)} for {len(self.query)}"
            )
        return self


class GetRewardResponse(BaseModel):
    """OpenRLHF's answer shape. ``rewards`` and ``scores`` carry the same raw scores (OpenRLHF reads
    ``rewards``; newer versions also log ``scores``)."""

    rewards: list[float]
    scores: list[float]
    extra_logs: dict[str, list[float]] = Field(default_factory=dict)


class CalibrationStats(BaseModel):
    """What ``normalize`` divides by, computed once at start-up."""

    file: str
    items: int
    mean: float
    std: float


class RewarderInfo(BaseModel):
    """``GET /info``: what is being served and under which limits, so clients can size requests."""

    model: str
    version: str
    source: Literal["model", "function"]
    format: Literal["chat_template", "hh", "raw"] = Field(description="How ``inputs`` pairs are formatted.")
    max_items: int
    max_text_chars: int
    max_length: int | None = Field(description="Token limit per item; None for functions (no tokenizer).")
    max_batch_size: int
    max_wait_ms: float
    device: str | None
    dtype: str | None
    calibration: CalibrationStats | None


class HealthResponse(BaseModel):
    status: Literal["ok"] = "ok"

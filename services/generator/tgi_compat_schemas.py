"""TGI's wire schemas (``POST /``, ``POST /generate``, ``GET /info``): only the generator's TGI routes
speak them, so they live here and not in the shared package."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from raftflow.schemas.generation import (
    MAX_STOP_SEQUENCES,
    UNSUPPORTED,
    PromptText,
    Seed,
    StopString,
    only_false,
    only_unset,
)


class TGIParameters(BaseModel):
    """TGI ``parameters``, with TGI's own limits. Fields the ``text-generation`` client always sends
    are accepted at their defaults; asking for one we cannot honour is a 422, never silently ignored."""

    model_config = ConfigDict(extra="ignore", strict=True, allow_inf_nan=False)

    do_sample: bool = False
    max_new_tokens: int | None = Field(
        default=None,
        ge=1,
        strict=True,
        description="Unset: TGI's default of 100, capped by the server limit.",
    )
    repetition_penalty: float | None = Field(
        default=None,
        ge=0.01,
        le=100.0,
        description="Bounded so the penalised logits stay finite (a penalty of 1e-300 divided them to inf).",
    )
    frequency_penalty: float | None = None
    return_full_text: bool = False
    stop: list[StopString] = Field(default_factory=list, max_length=MAX_STOP_SEQUENCES)
    seed: Seed | None = None
    temperature: float | None = Field(
        default=None, gt=0.0, le=100.0, description="Values below 0.01 sample at 0.01 (as vLLM does)."
    )
    top_k: int | None = Field(default=None, gt=0, strict=True)
    top_p: float | None = Field(default=None, gt=0.0, lt=1.0)
    truncate: int | None = Field(default=None, ge=1, strict=True)
    typical_p: float | None = Field(default=None, gt=0.0, lt=1.0)
    best_of: int | None = Field(default=None, ge=1, strict=True)
    watermark: bool = False
    details: bool = False
    decoder_input_details: bool = False
    top_n_tokens: int | None = None
    grammar: dict | None = None
    adapter_id: str | None = None

    _false_only = field_validator("watermark", "decoder_input_details")(only_false)
    _unset_only = field_validator("frequency_penalty", "top_n_tokens", "grammar", "adapter_id")(only_unset)

    @model_validator(mode="after")
    def _best_of_needs_sampling(self) -> TGIParameters:
        if (self.best_of or 1) > 1 and not self.sampling:
            raise ValueError("best_of > 1 needs sampling (do_sample, temperature, top_k, top_p or typical_p)")
        return self

    @property
    def sampling(self) -> bool:
        """TGI samples when asked to, or when any warper is set (its NextTokenChooser rule)."""
        return self.do_sample or any(
            value is not None for value in (self.temperature, self.top_k, self.top_p, self.typical_p)
        )


class TGIRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True, allow_inf_nan=False)

    inputs: PromptText
    parameters: TGIParameters = Field(default_factory=TGIParameters)
    stream: bool = False

    @field_validator("stream")
    @classmethod
    def _no_stream(cls, value: bool) -> bool:
        if value:
            raise ValueError(f"stream=true {UNSUPPORTED}; call generate(), not generate_stream()")
        return value


TGIFinishReason = Literal["length", "eos_token", "stop_sequence"]


class TGIToken(BaseModel):
    id: int
    text: str
    logprob: float | None = Field(description="Log-probability under the sampling distribution.")
    special: bool


class TGIBestOfSequence(BaseModel):
    generated_text: str
    finish_reason: TGIFinishReason
    generated_tokens: int
    seed: int | None = None
    prefill: list[TGIToken] = Field(default_factory=list)
    tokens: list[TGIToken]


class TGIDetails(BaseModel):
    finish_reason: TGIFinishReason
    generated_tokens: int
    seed: int | None = None
    prefill: list[TGIToken] = Field(default_factory=list)
    tokens: list[TGIToken]
    best_of_sequences: list[TGIBestOfSequence] | None = None


class TGIResponse(BaseModel):
    generated_text: str
    details: TGIDetails | None = None


class TGIInfo(BaseModel):
    """``GET /info`` in TGI's shape (the fields its clients and dashboards read)."""

    model_id: str
    model_sha: str | None
    model_dtype: str
    model_device_type: str
    model_pipeline_tag: str = "text-generation"
    max_concurrent_requests: int
    max_best_of: int
    max_stop_sequences: int = MAX_STOP_SEQUENCES
    max_input_tokens: int | None
    max_total_tokens: int | None
    max_client_batch_size: int
    router: str = "raftflow-generator"
    version: str
    backend: str
    load_count: int

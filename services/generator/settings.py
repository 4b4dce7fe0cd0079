"""Generator settings: ``GENERATOR_*`` environment variables, overridden by command-line flags.

Limits are settings rather than constants because they depend on the hardware: a GPU box serves far
larger batches than a laptop. Every field is documented in docs/generator.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from raftflow.settings import CommonSettings


class GeneratorSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="GENERATOR_")

    model: str | None = Field(
        default=None,
        description="Checkpoint directory or hub id to serve (required by the transformers backend).",
    )
    reference_model: str | None = Field(
        default=None,
        description="Checkpoint directory or hub id loaded beside the served one as the reference of "
        "POST /v1/logprobs (the initial policy, for KL estimates). Not confined by load_roots: it is "
        "the operator's choice, like model.",
    )
    port: int = Field(default=8001, ge=1, le=65535)
    backend: Literal["transformers", "tgi"] = Field(
        default="transformers",
        description="transformers: sample in this process; tgi: forward sampling to a TGI server.",
    )
    tgi_url: str | None = Field(default=None, description="Base URL of the TGI server (backend=tgi).")
    tgi_api_token: str | None = Field(
        default=None, description="Bearer token sent to the TGI server, if it requires one."
    )
    tgi_concurrency: int = Field(
        default=8, ge=1, description="Requests in flight to TGI at once (TGI batches them itself)."
    )
    tgi_timeout: float = Field(
        default=600.0, gt=0, description="Seconds one TGI request may take (the client's 10 s is too short)."
    )
    tgi_retry_seconds: float = Field(
        default=60.0, ge=0, description="How long an unreachable or failing TGI is retried before a 503."
    )
    max_n: int = Field(default=64, ge=1, description="Largest n (and TGI best_of) accepted.")
    max_tokens: int = Field(default=1024, ge=1, description="Largest max_tokens / max_new_tokens accepted.")
    max_prompts: int = Field(default=256, ge=1, description="Most prompts in one completions request.")
    token_budget: int = Field(
        default=32768,
        ge=1,
        description="Tokens (rows x (padded prompt + new tokens)) one model.generate call may hold; bounds "
        "memory. A request larger than this runs as several generate calls.",
    )
    load_roots: list[Path] = Field(
        default_factory=list,
        description="Directories POST /v1/load may load from (after resolving '..' and symlinks); hub ids "
        "are refused when set. Empty: any local path or hub id (local use). Env: a JSON list.",
    )
    shared_prefill: bool = Field(
        default=True,
        description="Run each prompt through the model once and copy its KV cache to its n samples, "
        "instead of once per sample (same samples, less compute). Off: plain num_return_sequences.",
    )

    @model_validator(mode="after")
    def _backend_has_target(self) -> GeneratorSettings:
        if self.backend == "transformers" and not self.model:
            raise ValueError("the transformers backend needs a model: --model PATH_OR_ID or GENERATOR_MODEL")
        if self.backend == "tgi" and not self.tgi_url:
            raise ValueError("the tgi backend needs --tgi-url URL or GENERATOR_TGI_URL")
        return self

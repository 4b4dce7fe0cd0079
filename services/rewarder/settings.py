"""Rewarder settings: ``REWARDER_*`` env vars, overridden by command-line flags (init kwargs).

Shared settings (device, torch threads, API token, log level) come from :class:`CommonSettings` and
its ``RAFTFLOW_*`` variables. Every field is documented in docs/rewarder.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from raftflow.conversation import PromptFormat
from raftflow.settings import CommonSettings


class RewarderSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="REWARDER_", extra="ignore", populate_by_name=True)

    port: int = Field(default=8002, ge=1, le=65535, description="HTTP port.")
    model: str | None = Field(
        default=None,
        description="Reward model: a local directory or a hub id of a sequence classifier with one output.",
    )
    function: str | None = Field(
        default=None,
        description="Rule-based reward instead of a model: 'module:function' taking list[RewardItem] and "
        "returning list[float].",
    )
    vllm_url: str | None = Field(
        default=None,
        description="Score through this vLLM pooling server (vllm serve MODEL --runner pooling --convert "
        "classify) instead of loading the model here; model still names the same checkpoint, whose "
        "tokenizer renders and truncates items here.",
    )
    vllm_model_name: str | None = Field(
        default=None, description="The name vLLM serves the reward model under; default the first it lists."
    )
    vllm_api_key: str | None = Field(default=None, description="Bearer token of the vLLM server, if any.")
    vllm_timeout: float = Field(default=300.0, gt=0, description="Seconds one scoring call to vLLM may take.")
    format: PromptFormat = Field(
        default="auto",
        description="How 'inputs' pairs become text (raftflow.conversation): auto (the format the reward "
        "model's training job recorded, else the tokenizer's chat template, else hh), chat_template, hh "
        "('\\n\\nHuman: ...\\n\\nAssistant: ...', a prompt's own HH turns parsed, not wrapped again), "
        "or raw (prompt + response as written).",
    )
    max_items: int = Field(default=1024, ge=1, description="Most items (inputs or texts) in one request.")
    max_text_chars: int = Field(
        default=65_536, ge=1, description="Most characters in one text, prompt or response of a request."
    )
    max_length: int | None = Field(
        default=None,
        ge=1,
        description="Most tokens scored per item; longer items lose the start of the prompt first. Default: "
        "the length a raftflow reward-model job trained the checkpoint on (config.json's "
        "raftflow_max_length), else the model's context length.",
    )
    max_batch_size: int = Field(default=32, ge=1, description="Most items in one forward pass.")
    max_batch_tokens: int = Field(
        default=16_384,
        ge=1,
        description="Most padded tokens (items x longest item) in one forward pass: bounds memory on long "
        "texts, and a small value cuts padding on CPUs, where every padded token costs compute.",
    )
    max_wait_ms: float = Field(
        default=5.0,
        ge=0.0,
        le=10_000.0,
        description="How long the first queued item waits for others to fill a batch (0: no wait).",
    )
    calibration_file: Path | None = Field(
        default=None,
        description="JSON Lines (or a JSON list) of texts or {prompt, response} pairs scored once at "
        "start-up; their mean/std are what 'normalize' standardises with.",
    )
    add_special_tokens: bool = Field(
        default=True,
        description="Let the tokenizer add its special tokens (e.g. BOS) to hh-formatted pairs and to texts. "
        "Chat-template pairs never get them: the template writes its own.",
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="auto", description="Model weights' dtype; auto is bf16 on GPUs that support it, else fp32."
    )
    openrlhf_append_eos: bool = Field(
        default=False,
        description="On /get_reward, strip pad/EOS from both ends of each query and append one EOS, as "
        "OpenRLHF's serve_rm does (its reward models read the EOS position).",
    )
    access_log: bool = Field(
        default=False, description="One log line per request (uvicorn's access log); /metrics counts them."
    )

    @model_validator(mode="after")
    def _one_reward_source(self) -> RewarderSettings:
        if (self.model is None) == (self.function is None):
            raise ValueError(
                "give exactly one of model (REWARDER_MODEL / --model) or function "
                "(REWARDER_FUNCTION / --function)"
            )
        if self.vllm_url is not None and self.model is None:
            raise ValueError(
                "vllm_url scores a reward model: give its checkpoint too (REWARDER_MODEL / --model)"
            )
        return self

    @property
    def max_wait_s(self) -> float:
        return self.max_wait_ms / 1000.0

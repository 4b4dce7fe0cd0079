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
    backend: Literal["transformers", "tgi", "vllm"] = Field(
        default="transformers",
        description="transformers: sample in this process; tgi: forward sampling to a TGI server; "
        "vllm: sample with a vLLM server this service starts (or attaches to) and drives.",
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
    vllm_url: str | None = Field(
        default=None,
        description="Attach to this running vLLM OpenAI server (started with VLLM_SERVER_DEV_MODE=1 for "
        "hot reload) instead of starting one. Unset: the service starts vLLM on --model itself.",
    )
    vllm_api_key: str | None = Field(default=None, description="Bearer token the vLLM server wants, if any.")
    vllm_python: str | None = Field(
        default=None,
        description="Interpreter of vLLM's own environment; default .venv-vllm/bin/python (make venv-vllm).",
    )
    vllm_port: int = Field(default=0, ge=0, le=65535, description="Port of the started vLLM; 0: a free one.")
    vllm_dtype: str = Field(default="auto", description="vLLM's --dtype (auto: bf16 on CPU and GPU).")
    vllm_max_model_len: int | None = Field(
        default=2048, ge=16, description="vLLM's --max-model-len: context length, bounds the KV cache."
    )
    vllm_kv_cache_gib: int = Field(
        default=2, ge=1, description="KV cache on CPU, whole GiB (VLLM_CPU_KVCACHE_SPACE)."
    )
    vllm_gpu_memory_utilization: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Share of GPU memory vLLM takes (vLLM's --gpu-memory-utilization); the rest is the "
        "trainer's when both share one GPU.",
    )
    vllm_sleep_mode: bool = Field(
        default=False,
        description="Start vLLM with --enable-sleep-mode (GPU only), so POST /v1/sleep hands its memory "
        "to the trainer between sampling stages.",
    )
    vllm_enable_lora: bool = Field(
        default=False,
        description="Start vLLM with --enable-lora, so LoRA adapter checkpoints load as adapters.",
    )
    vllm_max_lora_rank: int = Field(default=16, ge=1, description="vLLM's --max-lora-rank.")
    vllm_seed: int = Field(default=0, ge=0, description="vLLM's engine seed (--seed).")
    vllm_forward_seed: bool | None = Field(
        default=None,
        description="Send each request's seed to vLLM. Unset: only when this machine has CUDA; vLLM's CPU "
        "engine dies on a per-request seed.",
    )
    vllm_startup_timeout: float = Field(
        default=600.0, gt=0, description="Seconds vLLM may take to come up (35-130 s on 2 CPU cores)."
    )
    vllm_timeout: float = Field(default=1800.0, gt=0, description="Seconds one request to vLLM may take.")
    vllm_extra_args: list[str] = Field(
        default_factory=list, description="More vLLM server flags, as a JSON list in the env."
    )
    vllm_log_dir: str | None = Field(
        default=None, description="Where the started vLLM logs; default the temp dir."
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
        if self.backend == "vllm" and not (self.model or self.vllm_url):
            raise ValueError("the vllm backend needs --model PATH_OR_ID (to start vLLM) or --vllm-url URL")
        if self.backend == "transformers" and not self.model:
            raise ValueError("the transformers backend needs a model: --model PATH_OR_ID or GENERATOR_MODEL")
        if self.backend == "tgi" and not self.tgi_url:
            raise ValueError("the tgi backend needs --tgi-url URL or GENERATOR_TGI_URL")
        return self

"""The orchestrator's API bodies: what a RAFT run is asked to do and what it reports.

Defaults follow the paper and LMFlow's RAFT where they are known to work (local top-1 selection,
top_k=0 / top_p=1.0 sampling); every field says what it means so the OpenAPI page documents itself.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, model_validator

from raftflow.conversation import PromptFormat
from raftflow.schemas.generation import MAX_STOP_SEQUENCES, SamplingParams, StopString
from raftflow.schemas.jobs import Tracker, TrainingConfig
from raftflow.schemas.paths import NO_NUL, PathStr

RunStatus = Literal["queued", "running", "awaiting_checkpoint", "succeeded", "failed", "cancelled"]
Stage = Literal["sample", "score", "gold_score", "select", "train", "load", "eval", "done"]


class SamplingOptions(BaseModel):
    """How a RAFT iteration samples: K per prompt and the decoding options. The sampling part of
    ``POST /iterations`` and the options of ``raftflow sample``, defined once."""

    # strict: a body must have the types its schema documents (lax mode took 0.0 as false, "1" as 1).
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    k: int | None = Field(default=None, ge=1, le=256, description="Samples per prompt. Default 8.")
    top_reward_percentage: float | None = Field(
        default=None,
        gt=0.0,
        le=1.0,
        description="LMFlow's way to set K: K = int(1 / top_reward_percentage). Give k or this, not both.",
    )
    temperature: float = Field(default=1.0, gt=0.0, le=5.0, description="Sampling temperature.")
    top_p: float = Field(default=1.0, gt=0.0, le=1.0, description="Nucleus sampling; 1.0 is off (LMFlow).")
    top_k: int = Field(default=0, ge=0, le=10_000, description="Top-k sampling; 0 is off (LMFlow).")
    min_new_tokens: int | None = Field(
        default=None,
        ge=1,
        le=4096,
        description="With it, each generation batch draws its max new tokens uniformly in "
        "[min_new_tokens, max_new_tokens] (LMFlow's RAFT).",
    )
    max_new_tokens: int = Field(default=64, ge=1, le=4096, description="Max new tokens per response.")
    stop: list[StopString] | None = Field(
        default=None,
        max_length=MAX_STOP_SEQUENCES,
        description="Stop strings: a response ends at the first, which is cut from its text. Default: the "
        "prompt format's own: 'hh' stops at the next turn ('\\n\\nHuman:', '\\n\\nAssistant:'), the "
        "other formats at EOS only. [] turns hh's default off.",
    )

    @model_validator(mode="after")
    def _consistent_sampling(self) -> SamplingOptions:
        if self.k is not None and self.top_reward_percentage is not None:
            raise ValueError("give either k or top_reward_percentage, not both")
        if self.min_new_tokens is not None and self.min_new_tokens > self.max_new_tokens:
            raise ValueError(
                f"min_new_tokens ({self.min_new_tokens}) must be <= max_new_tokens ({self.max_new_tokens})"
            )
        return self

    @property
    def samples_per_prompt(self) -> int:
        """K: ``k``, else LMFlow's ``int(1 / top_reward_percentage)`` (rounded to the nearest whole K
        first, so 0.1 gives 10 whatever the float error), else 8."""
        if self.k is not None:
            return self.k
        if self.top_reward_percentage is not None:
            return max(1, int(round(1 / self.top_reward_percentage, 6)))
        return 8

    def sampling_params(self, seed: int | None) -> SamplingParams:
        return SamplingParams(
            max_tokens=self.max_new_tokens,
            min_tokens=self.min_new_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            seed=seed,
            stop=self.stop,
        )


class RunRequest(SamplingOptions):
    """Body of ``POST /iterations``: one RAFT alignment run."""

    # strict: a body must have the types its schema documents (lax mode took 0.0 as false, "1" as 1).
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    policy: PathStr = Field(
        description="Initial policy: a checkpoint directory or a hub id.",
    )
    prompts: PathStr = Field(
        description="Prompt dataset path (LMFlow JSON, JSONL with 'prompt', .txt, or a datasets dir).",
    )
    generator_url: HttpUrl | None = Field(
        default=None, description="Overrides GENERATOR_URL for this run (any OpenAI-compatible server)."
    )
    generator_backend: Literal["openai", "tgi"] = Field(
        default="openai",
        description="'openai': raftflow's generator (any engine: transformers, vllm, tgi); 'tgi': a "
        "text-generation-inference server directly (one iteration: it cannot hot-load).",
    )
    generator_urls: list[HttpUrl] | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="Several generator replicas for this run (overrides generator_url and the settings): "
        "sampling is spread over them, each checkpoint loads into all of them.",
    )
    rewarder_url: HttpUrl | None = Field(default=None, description="Overrides REWARDER_URL for this run.")
    rewarder_urls: list[HttpUrl] | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="Several rewarder replicas for this run (overrides rewarder_url and the settings).",
    )
    gold_rewarder_url: HttpUrl | None = Field(
        default=None,
        description="Optional second rewarder whose scores are reported (gold_* metrics) but never used "
        "for ranking: a gold reward beside the learned proxy makes reward hacking visible.",
    )
    prompt_format: PromptFormat = Field(
        default="auto",
        description="How each prompt (a conversation: HH dialogue text, LMFlow text, a plain string or "
        "messages) becomes the policy's text, named once for the run: the generator conditions on it and "
        "every fine-tuning job trains on it. 'hh': '\\n\\nHuman: ...\\n\\nAssistant:' with each turn "
        "wrapped once; 'chat_template': the policy tokenizer's template; 'raw': the prompt as written "
        "(continuation tasks); 'auto': the format the policy checkpoint records, else its chat template, "
        "else hh. The rewarder renders pairs in the reward model's own format (see docs/data.md).",
    )
    num_iterations: int = Field(default=3, ge=1, le=1000, description="RAFT iterations to run.")
    prompts_per_iteration: int = Field(
        default=64,
        ge=1,
        le=100_000,
        description="Prompts sampled per iteration (LMFlow's raft_batch_size).",
    )
    selection: Literal["local", "global"] = Field(
        default="local",
        description="'local': best sample of each prompt (the paper's RAFT); "
        "'global': top fraction of all samples.",
    )
    global_fraction: float | None = Field(
        default=None,
        gt=0.0,
        le=1.0,
        description="Share of the valid samples kept under 'global' selection (degenerate samples and "
        "prompts filtered by min_reward / min_reward_margin are not counted). Default 1/K.",
    )
    min_reward: float | None = Field(
        default=None,
        description="Drop a prompt whose best (valid) sample's raw reward is below this: nothing worth "
        "learning. The raw reward, not the kl_coef-penalised score (which only ranks).",
    )
    min_reward_margin: float | None = Field(
        default=None,
        ge=0.0,
        description="Drop a prompt whose best sample beats the median of its K by less than this (raw "
        "rewards): the ranking there is the reward model's noise. With K = 1 any positive margin drops "
        "every prompt.",
    )
    trainer: Literal["queue", "external"] = Field(
        default="queue",
        description="'queue': raftflow's trainer worker fine-tunes each iteration (with 'training'). "
        "'external': after selection the run waits (status awaiting_checkpoint; the selected data's path "
        "in the run view) until a checkpoint fine-tuned elsewhere is posted to "
        "POST /iterations/{id}/checkpoint, then loads it and goes on (LMFlow-RAFT's 'bring your own "
        "fine-tuning'; 'training' is not used).",
    )
    training: TrainingConfig = Field(
        default_factory=TrainingConfig, description="Fine-tuning hyper-parameters passed to the trainer."
    )
    report_to: list[Tracker] | None = Field(
        default=None,
        max_length=4,
        description="Experiment trackers (tensorboard, mlflow, wandb, trackio) that get the run's metrics "
        "per iteration, and its training jobs' loss and learning rate per step (docs/tracking.md). "
        "Default: the orchestrator's ORCHESTRATOR_REPORT_TO.",
    )
    sleep_generator_while_training: bool = Field(
        default=False,
        description="Put the generator's vLLM engine to sleep (POST /v1/sleep) for the train stage and "
        "wake it before the new checkpoint loads, so a trainer on the same GPU gets its memory. Needs "
        "the generator's vllm engine on a GPU with GENERATOR_VLLM_SLEEP_MODE; elsewhere the run fails "
        "at the first train stage with the generator's 409.",
    )
    kl_coef: float = Field(
        default=0.0,
        ge=0.0,
        le=100.0,
        description="Rank samples by r - kl_coef * (log p - log p0), the KL-penalised reward of the RAFT "
        "paper (p: the policy that sampled, p0: the initial policy; the generator scores both). 0 ranks by "
        "the reward alone. Needs raftflow's generator.",
    )
    sft_mix_data: str | None = Field(
        default=None,
        max_length=1024,
        pattern=NO_NUL,
        description="(prompt, response) pairs (e.g. the SFT set) mixed into every fine-tuning step.",
    )
    sft_mix_ratio: float = Field(
        default=0.0,
        ge=0.0,
        le=0.9,
        description="Share of each fine-tuning set drawn from sft_mix_data (0.2: one SFT pair per four kept "
        "samples). Keeps the policy near reference answers, against the sharpening RAFT causes.",
    )
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="Seeds prompt order, sampling, training.")
    eval_prompts: str | None = Field(
        default=None,
        max_length=1024,
        pattern=NO_NUL,
        description="Held-out prompt dataset; each iteration reports the reward on it (1 sample each).",
    )
    max_eval_prompts: int = Field(default=64, ge=1, le=10_000, description="Eval prompts used per iteration.")
    eval_pairs: str | None = Field(
        default=None,
        max_length=1024,
        pattern=NO_NUL,
        description="Held-out (prompt, response) pairs (LMFlow text2text, or prompt/response records): each "
        "iteration reports the new policy's perplexity of the responses (eval_ppl), what RAFT costs in "
        "fit to reference answers.",
    )
    max_eval_pairs: int = Field(default=64, ge=1, le=10_000, description="Eval pairs used per iteration.")

    @model_validator(mode="after")
    def _consistent_run(self) -> RunRequest:
        if self.generator_backend == "tgi" and self.prompt_format not in ("hh", "raw"):
            raise ValueError(
                f"prompt_format {self.prompt_format!r} needs the policy's tokenizer, which a TGI backend "
                "does not expose here: with generator_backend 'tgi' set prompt_format to 'hh' or 'raw'"
            )
        if self.sft_mix_ratio > 0 and not self.sft_mix_data:
            raise ValueError("sft_mix_ratio needs sft_mix_data (the pairs to mix in)")
        if self.generator_urls is not None and self.generator_url is not None:
            raise ValueError("give generator_url or generator_urls, not both")
        if self.rewarder_urls is not None and self.rewarder_url is not None:
            raise ValueError("give rewarder_url or rewarder_urls, not both")
        if (
            self.generator_urls is not None
            and len(self.generator_urls) > 1
            and self.generator_backend == "tgi"
        ):
            raise ValueError("generator_urls: replicas need raftflow's generator, not TGI servers")
        if self.sleep_generator_while_training and self.generator_backend == "tgi":
            raise ValueError("sleep_generator_while_training needs raftflow's generator, not a TGI server")
        if self.kl_coef > 0 and self.generator_backend == "tgi":
            raise ValueError("kl_coef needs log-probabilities from raftflow's generator, not a TGI backend")
        return self


class StageProgress(BaseModel):
    stage: Stage
    done: int = 0
    total: int = 0
    unit: str = ""
    detail: dict[str, float | int | str | None] = Field(default_factory=dict)

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


class IterationView(BaseModel):
    index: int
    stage: Stage
    checkpoint: str | None
    metrics: dict[str, float]
    started_at: datetime | None
    finished_at: datetime | None


class AwaitingCheckpoint(BaseModel):
    """What a run with ``trainer: external`` waits for."""

    iteration: int
    selected_data: str = Field(description="The iteration's kept samples (LMFlow text2text): train on these.")
    submit_to: str = Field(description='Where to POST the fine-tuned checkpoint: {"path": ...}.')


class CheckpointSubmission(BaseModel):
    """Body of ``POST /iterations/{id}/checkpoint``."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    path: PathStr = Field(
        description="The fine-tuned policy: a directory with config.json, tokenizer and full (merged) "
        "weights, inside ORCHESTRATOR_PATH_ROOTS when set, readable by the generator."
    )


class RunView(BaseModel):
    """Body of ``GET /iterations/{run_id}``."""

    id: str
    url: str
    status: RunStatus
    request: RunRequest
    current_iteration: int = Field(description="Index of the iteration in progress (or the next one).")
    stage: Stage | None
    progress: StageProgress | None
    percent_complete: float = Field(description="Whole-run progress, 0-100.")
    policy: str = Field(description="The checkpoint the run samples from now (the latest trained).")
    iterations: list[IterationView]
    awaiting_checkpoint: AwaitingCheckpoint | None = Field(
        default=None, description="Set while the run waits for an externally trained checkpoint."
    )
    error: str | None
    created_at: datetime
    updated_at: datetime


class RunCreated(BaseModel):
    id: str
    url: str
    status: RunStatus

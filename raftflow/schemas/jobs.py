"""Training job specs: what the orchestrator and the CLI send to the trainer, and what comes back.

Defined once here and validated on both sides of the queue: the client validates before it submits
(a typo fails in the caller's process, not hours later in a worker), the worker validates what it
receives (the queue carries plain JSON, so anything could arrive).

A job's output is ``Path(output_dir) / job_id``: the job id names the checkpoint, which is what makes a
redelivered or resubmitted job idempotent. The directory appears atomically (temp dir + rename) and
holds :data:`COMPLETION_MARKER`, the :class:`JobResult` as JSON, so a reader can tell a finished
checkpoint from anything else.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from raftflow.conversation import PromptFormat
from raftflow.schemas.paths import PathStr

JOB_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,128}$"
COMPLETION_MARKER = "raftflow_job.json"
JobKind = Literal["sft", "reward_model"]
FINISHED_STATES = frozenset({"SUCCESS", "FAILURE", "REVOKED"})


class LoraOptions(BaseModel):
    """Train low-rank adapters instead of all weights (peft): far less memory, and on a small GPU the
    only way to fine-tune a larger model."""

    # strict: a body must have the types its schema documents (lax mode took 0.0 as false, "1" as 1).
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    r: int = Field(default=8, ge=1, le=1024, description="Adapter rank.")
    alpha: int = Field(
        default=16, ge=1, le=4096, description="Adapter scaling (lora_alpha): updates are scaled by alpha/r."
    )
    dropout: float = Field(default=0.05, ge=0.0, lt=1.0, description="Dropout on the adapter input.")
    target_modules: list[str] | None = Field(
        default=None,
        description="Module names to adapt (e.g. ['q_proj', 'v_proj']); None uses peft's default for the "
        "architecture (GPT-2: c_attn; LLaMA: q_proj, v_proj).",
    )
    merge: bool = Field(
        default=True,
        description="Merge the adapters into the weights before saving, so the generator and rewarder load a "
        "plain checkpoint. False saves the adapter (and the base's config with the job's records); the "
        "generator and rewarder merge it into its base on load, vLLM serves it unmerged.",
    )


Tracker = Literal["tensorboard", "mlflow", "wandb", "trackio"]
"""Experiment trackers a run or a job can log to (docs/tracking.md)."""


class TrainingConfig(BaseModel):
    """Hyper-parameters shared by every training job. Names follow LMFlow and transformers."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    epochs: float = Field(
        default=1.0, gt=0.0, le=1000.0, description="Passes over the data (fractions allowed)."
    )
    learning_rate: float = Field(
        default=2e-5, gt=0.0, le=1.0, description="Peak learning rate (the paper used 2e-5 for LLaMA-7B)."
    )
    per_device_batch_size: int = Field(
        default=8, ge=1, le=4096, description="Examples per forward pass per device."
    )
    gradient_accumulation_steps: int = Field(
        default=1, ge=1, le=4096, description="Forward passes per optimizer step (multiplies the batch)."
    )
    max_length: int = Field(
        default=512,
        ge=8,
        le=131_072,
        description="Tokens per example; longer ones are truncated (SFT keeps the start, reward models the "
        "end). Capped at the model's context window.",
    )
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="Seeds data order, new heads and dropout.")
    max_steps: int | None = Field(
        default=None,
        ge=1,
        le=10_000_000,
        description="Stop after this many optimizer steps (overrides epochs).",
    )
    loss_on: Literal["response", "all"] = Field(
        default="response",
        description="SFT only. 'response': loss on the response tokens (and EOS) only; 'all': on the whole "
        "prompt + response text, as LMFlow's RAFT does.",
    )
    lora: LoraOptions | None = Field(default=None, description="Train LoRA adapters instead of all weights.")
    warmup_ratio: float = Field(
        default=0.0, ge=0.0, le=1.0, description="Share of steps spent warming up the learning rate."
    )
    lr_scheduler_type: Literal["linear", "cosine", "constant", "constant_with_warmup"] = Field(
        default="linear", description="Learning-rate schedule after warm-up."
    )
    weight_decay: float = Field(default=0.0, ge=0.0, le=1.0, description="AdamW weight decay.")
    max_grad_norm: float = Field(default=1.0, gt=0.0, description="Gradient clipping threshold.")
    logging_steps: int = Field(
        default=5,
        ge=1,
        description="Steps between loss logs (the loss in progress reports and in the first/last metrics); "
        "each log syncs the device, so keep it above 1 for long GPU jobs.",
    )
    gradient_checkpointing: bool = Field(
        default=False, description="Recompute activations in the backward pass: less memory, ~30% slower."
    )
    report_to: list[Tracker] = Field(
        default_factory=list,
        max_length=4,
        description="Experiment trackers the job logs its loss, learning rate and grad norm to at every "
        "logging step, through transformers' own integrations (docs/tracking.md). A RAFT run's jobs "
        "inherit the run's report_to.",
    )
    group_by_length: bool = Field(
        default=False,
        description="Batch examples of similar length (transformers' LengthGroupedSampler), so little "
        "compute goes to padding: on texts of mixed length (HH dialogues) a CPU trains ~2x faster. Batches "
        "stay shuffled in groups of 50.",
    )


class TrainingJob(BaseModel):
    """Fields every job has. Subclasses name the kind of training."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    kind: ClassVar[JobKind]

    job_id: str = Field(
        pattern=JOB_ID_PATTERN,
        description="Names the job, its Celery task and its output directory; resubmitting the same id is "
        "idempotent.",
    )
    model: PathStr = Field(
        description="Starting checkpoint: a directory or a hub id.",
    )
    data: PathStr = Field(
        description="Training data file or datasets directory.",
    )
    output_dir: PathStr = Field(
        description="Parent directory: the checkpoint lands in output_dir/job_id.",
    )
    training: TrainingConfig = Field(default_factory=TrainingConfig, description="Hyper-parameters.")
    prompt_format: PromptFormat = Field(
        default="auto",
        description="How (prompt, response) pairs become model text (raftflow.conversation): 'hh', "
        "'chat_template' (the tokenizer's), 'raw' (joined as written), or 'auto' (the format the "
        "checkpoint records, else its chat template, else hh). The checkpoint records the format used, "
        "and the generator and rewarder render the same way.",
    )

    @property
    def checkpoint_path(self) -> Path:
        """Where the finished checkpoint lives (absolute, as the worker resolves it)."""
        return Path(self.output_dir).resolve() / self.job_id


class SFTJob(TrainingJob):
    """Fine-tune a causal LM on (prompt, response) pairs or plain texts: the SFT stage and every RAFT
    fine-tuning step."""

    kind: ClassVar[JobKind] = "sft"


class RewardModelJob(TrainingJob):
    """Train a one-output sequence classifier on (chosen, rejected) pairs with the Bradley-Terry loss."""

    kind: ClassVar[JobKind] = "reward_model"

    eval_fraction: float = Field(
        default=0.1,
        ge=0.0,
        lt=1.0,
        description="Share of pairs held out to report pairwise accuracy (0 turns evaluation off).",
    )


class JobResult(BaseModel):
    """What a finished job returns, and what its completion marker holds."""

    job_id: str
    kind: JobKind
    checkpoint: str = Field(description="Absolute path of the saved checkpoint directory.")
    metrics: dict[str, float] = Field(
        default_factory=dict,
        description="train_loss_first/last, train_loss (mean), train_runtime, tokens_per_second, "
        "train_steps, examples; reward models add eval_accuracy and eval_loss.",
    )


class JobProgress(BaseModel):
    """A job's state as the queue knows it. ``state`` is Celery's: PENDING (queued or unknown), STARTED,
    PROGRESS, SUCCESS, FAILURE, RETRY or REVOKED."""

    job_id: str
    state: str
    step: int = Field(default=0, description="Optimizer steps done.")
    total_steps: int = Field(default=0, description="Optimizer steps planned (0 until training starts).")
    loss: float | None = Field(default=None, description="Latest logged training loss.")
    eta_seconds: float | None = Field(default=None, description="Estimated seconds left in training.")
    error: str | None = Field(default=None, description="The worker's error message when the job failed.")

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES
